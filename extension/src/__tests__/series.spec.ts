import { extent, linePath, RunSeries, sparklinePath, stepTicks, thin, Point, ticks } from '../series';

describe('RunSeries', () => {
  it('collects finite losses, learning rates and eval metrics across chunks', () => {
    const s = new RunSeries();
    s.add([
      { event: 'started' },
      { event: 'step', step: 1, loss: 1.5, learning_rate: 5e-5 },
      { event: 'step', step: 2, loss: null, learning_rate: 4e-5 },
      { event: 'corrupt_line' }
    ]);
    s.add([
      { event: 'step', step: 3, loss: 0.9 },
      { event: 'eval', step: 3, split: 'validation', metrics: { accuracy: 0.8, loss: null } }
    ]);
    expect(s.loss).toEqual([
      [1, 1.5],
      [3, 0.9]
    ]);
    expect(s.learningRate).toEqual([
      [1, 5e-5],
      [2, 4e-5]
    ]);
    expect(Array.from(s.evals.keys())).toEqual(['validation/accuracy']);
    expect(s.corruptLines).toBe(1);
    s.clear();
    expect(s.loss).toEqual([]);
    expect(s.evals.size).toBe(0);
  });
});

describe('paths', () => {
  it('maps the extremes onto the box edges, y pointing down', () => {
    const d = linePath(
      [
        [0, 0],
        [10, 1]
      ],
      100,
      50,
      undefined,
      0
    );
    expect(d).toBe('M0.0,50.0L100.0,0.0');
  });
  it('draws a long curve with a few points per pixel column, keeping its spikes', () => {
    const points: Point[] = Array.from({ length: 200000 }, (_, i): Point => [i + 1, 1 + Math.sin(i / 5000) / 10]);
    points[123456][1] = 9; // one spike
    points[54321][1] = -3; // one dip
    const kept = thin(points, 1, 400 / 200000);
    expect(kept.length).toBeLessThanOrEqual(4 * 401);
    expect(kept.length).toBeGreaterThan(400);
    expect(kept).toContainEqual([123457, 9]);
    expect(kept).toContainEqual([54322, -3]);
    expect(kept[0]).toEqual(points[0]);
    expect(kept[kept.length - 1]).toEqual(points[points.length - 1]);
    const xs = kept.map(p => p[0]);
    expect(xs).toEqual([...xs].sort((a, b) => a - b));
    const d = linePath(points, 400, 100); // its scale: (400 - 2 * pad) pixels over steps 1 to 200,000
    expect(d.split('L').length).toBe(thin(points, 1, 398 / 199999).length);
    expect(d.split('L').length).toBeLessThanOrEqual(4 * 400);
    const short: Point[] = [[1, 2], [2, 1], [3, 3]];
    expect(thin(short, 1, 100)).toBe(short);
  });
  it('draws a flat series at mid height', () => {
    const d = sparklinePath([2, 2, 2], 84, 26);
    const ys = d.match(/,([\d.]+)/g)!.map(m => Number(m.slice(1)));
    expect(new Set(ys)).toEqual(new Set([13]));
  });
  it('is empty without data', () => {
    expect(sparklinePath([], 84, 26)).toBe('');
    expect(extent([])).toBeNull();
  });
  it('picks round ticks inside the range', () => {
    expect(ticks(0, 1)).toEqual([0, 0.5, 1]);
    const t = ticks(0.13, 1.62);
    expect(t[0]).toBeGreaterThanOrEqual(0.13);
    expect(t[t.length - 1]).toBeLessThanOrEqual(1.62);
    expect(t.length).toBeGreaterThanOrEqual(3);
    expect(ticks(1, 1)).toEqual([]);
  });
});

describe('stepTicks', () => {
  it('labels the first and the last step, where round ticks alone give one', () => {
    expect(ticks(1, 95).filter(Number.isInteger)).toEqual([50]);
    expect(stepTicks(1, 95)).toEqual([1, 50, 95]);
    expect(stepTicks(10, 270)).toEqual([10, 100, 200, 270]);
    expect(stepTicks(1, 540)).toEqual([1, 200, 400, 540]);
  });

  it('keeps whole steps only, and no round tick crowding an end', () => {
    expect(stepTicks(1, 3)).toEqual([1, 2, 3]);
    expect(stepTicks(1, 2)).toEqual([1, 2]);
    expect(stepTicks(190, 540)).toEqual([190, 300, 400, 500, 540]); // 200 sits on 190's label
    expect(stepTicks(0, 1000)).toEqual([0, 500, 1000]);
  });

  it('gives one tick for one step and none without steps', () => {
    expect(stepTicks(7, 7)).toEqual([7]);
    expect(stepTicks(Infinity, -Infinity)).toEqual([]);
  });
});
