/**
 * Curves from metrics.jsonl records, and the SVG path math for sparklines and charts.
 */
import { IMetricRecord } from './api';

export type Point = [number, number];

function finite(v: unknown): v is number {
  return typeof v === 'number' && isFinite(v);
}

/** Accumulates step and eval records as they arrive, in any number of chunks. */
export class RunSeries {
  readonly loss: Point[] = [];
  readonly learningRate: Point[] = [];
  /** eval metrics by `split/metric`, e.g. `validation/accuracy`. */
  readonly evals = new Map<string, Point[]>();
  corruptLines = 0;

  add(records: IMetricRecord[]): void {
    for (const r of records) {
      if (!r || typeof r !== 'object') {
        continue;
      }
      if (r.event === 'corrupt_line') {
        this.corruptLines += 1;
      } else if (r.event === 'step' && finite(r.step)) {
        if (finite(r.loss)) {
          this.loss.push([r.step, r.loss]);
        }
        if (finite(r.learning_rate)) {
          this.learningRate.push([r.step, r.learning_rate]);
        }
      } else if (r.event === 'eval' && finite(r.step) && r.metrics) {
        const split = r.split || 'eval';
        for (const [name, value] of Object.entries(r.metrics)) {
          if (finite(value)) {
            const key = `${split}/${name}`;
            const points = this.evals.get(key) ?? [];
            points.push([r.step, value]);
            this.evals.set(key, points);
          }
        }
      }
    }
  }

  clear(): void {
    this.loss.length = 0;
    this.learningRate.length = 0;
    this.evals.clear();
    this.corruptLines = 0;
  }
}

export interface IScale {
  x0: number;
  x1: number;
  y0: number;
  y1: number;
}

/** The data range of some points, padded so a flat line sits mid-height. */
export function extent(points: Point[]): IScale | null {
  if (!points.length) {
    return null;
  }
  let x0 = Infinity;
  let x1 = -Infinity;
  let y0 = Infinity;
  let y1 = -Infinity;
  for (const [x, y] of points) {
    x0 = Math.min(x0, x);
    x1 = Math.max(x1, x);
    y0 = Math.min(y0, y);
    y1 = Math.max(y1, y);
  }
  if (x0 === x1) {
    x0 -= 1;
    x1 += 1;
  }
  if (y0 === y1) {
    const pad = Math.abs(y0) * 0.1 || 1;
    y0 -= pad;
    y1 += pad;
  }
  return { x0, x1, y0, y1 };
}

/** An SVG path through `points` scaled into a `width` x `height` box (y grows downwards). */
export function linePath(
  points: Point[],
  width: number,
  height: number,
  scale: IScale | null = extent(points),
  pad = 1
): string {
  if (!scale || !points.length) {
    return '';
  }
  const sx = (width - 2 * pad) / (scale.x1 - scale.x0);
  const sy = (height - 2 * pad) / (scale.y1 - scale.y0);
  return thin(points, scale.x0, sx)
    .map(([x, y], i) => {
      const px = pad + (x - scale.x0) * sx;
      const py = height - pad - (y - scale.y0) * sy;
      return `${i ? 'L' : 'M'}${px.toFixed(1)},${py.toFixed(1)}`;
    })
    .join('');
}

/**
 * At most about four points per pixel column: where a column holds more, its first, lowest,
 * highest and last points, in step order, so a curve of 200,000 steps draws as fast as one of a
 * thousand and keeps its spikes. Points must be in x order, as steps are logged.
 */
export function thin(points: Point[], x0: number, sx: number): Point[] {
  const columns = Math.abs((points[points.length - 1]?.[0] - x0) * sx) + 1;
  if (!(points.length > 4 * columns)) {
    return points;
  }
  const out: Point[] = [];
  let i = 0;
  while (i < points.length) {
    const column = Math.floor((points[i][0] - x0) * sx);
    let j = i;
    let lo = i;
    let hi = i;
    while (j + 1 < points.length && Math.floor((points[j + 1][0] - x0) * sx) === column) {
      j += 1;
      if (points[j][1] < points[lo][1]) {
        lo = j;
      }
      if (points[j][1] > points[hi][1]) {
        hi = j;
      }
    }
    for (const k of [...new Set([i, lo, hi, j])].sort((a, b) => a - b)) {
      out.push(points[k]);
    }
    i = j + 1;
  }
  return out;
}

/** A sparkline path for evenly spaced values (the server's downsampled loss). */
export function sparklinePath(values: number[], width: number, height: number): string {
  const points: Point[] = values
    .map((v, i): Point => [i, v])
    .filter(([, v]) => isFinite(v));
  return linePath(points, width, height);
}

/** Up to `count` round tick values covering [lo, hi]. */
export function ticks(lo: number, hi: number, count = 4): number[] {
  if (!isFinite(lo) || !isFinite(hi) || hi <= lo) {
    return [];
  }
  const raw = (hi - lo) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map(m => m * mag).find(s => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Number(v.toPrecision(12)));
  }
  return out;
}

/**
 * Ticks for a step axis running from the `first` to the `last` step logged: both ends, so the axis
 * says where training started and where it got to, and the round whole steps between them that
 * keep `minGap` (a fraction of the range) from either end, so labels do not run into each other.
 * Round ticks alone can leave one label (steps 1 to 95 round to 50 only), and a short run's "1.5"
 * is no step.
 */
export function stepTicks(first: number, last: number, minGap = 0.1): number[] {
  if (!isFinite(first) || !isFinite(last)) {
    return [];
  }
  const lo = Math.ceil(Math.min(first, last));
  const hi = Math.floor(Math.max(first, last));
  if (hi < lo) {
    return [];
  }
  if (hi === lo) {
    return [lo];
  }
  const room = (hi - lo) * minGap;
  const between = ticks(lo, hi).filter(t => Number.isInteger(t) && t - lo >= room && hi - t >= room);
  return [lo, ...between, hi];
}
