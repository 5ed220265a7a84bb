import {
  formatAge,
  formatDelta,
  formatDuration,
  formatMetric,
  formatProgress,
  isActive,
  metricVsBaseline,
  progressFraction,
  toFinetuneCell
} from '../format';

describe('formatAge', () => {
  const now = new Date('2026-11-24T12:00:00Z');
  it.each([
    ['2026-11-24T11:59:58Z', 'just now'],
    ['2026-11-24T11:59:18Z', '42 s ago'],
    ['2026-11-24T11:55:00Z', '5 min ago'],
    ['2026-11-24T09:00:00+00:00', '3 h ago'],
    ['2026-11-22T12:00:00Z', '2 d ago'],
    ['2026-01-02T12:00:00Z', '2026-01-02']
  ])('%s is %s', (iso, expected) => {
    expect(formatAge(iso, now)).toBe(expected);
  });
  it('is empty for missing or invalid timestamps', () => {
    expect(formatAge(undefined, now)).toBe('');
    expect(formatAge('yesterday-ish', now)).toBe('');
  });
});

describe('metrics', () => {
  it('rounds to four significant digits and marks missing values', () => {
    expect(formatMetric(0.968543)).toBe('0.9685');
    expect(formatMetric(12345.6)).toBe('12350');
    expect(formatMetric(0.00001234)).toBe('1.23e-5');
    expect(formatMetric(0.00004)).toBe('4e-5');
    expect(formatMetric(null)).toBe('—');
    expect(formatMetric(NaN)).toBe('—');
    expect(formatMetric('0.5')).toBe('—');
  });
  it('signs the delta against the baseline', () => {
    expect(formatDelta(0.9685, 0.2135)).toBe('+0.755');
    expect(formatDelta(0.2, 0.5)).toBe('−0.3');
    expect(formatDelta(0.2, null)).toBe('');
  });
  it('summarizes the main metric against the baseline', () => {
    expect(
      metricVsBaseline({ id: 'r', status: 'completed', main_metric: 'accuracy', value: 0.9685, baseline: 0.2135 })
    ).toBe('accuracy 0.9685 vs 0.2135 baseline');
    expect(metricVsBaseline({ id: 'r', status: 'completed', main_metric: 'f1', value: 0.5 })).toBe('f1 0.5');
    expect(metricVsBaseline({ id: 'r', status: 'running', main_metric: 'f1' })).toBe('');
  });
});

describe('progress and status', () => {
  it('computes the fraction of steps done, clamped', () => {
    expect(progressFraction({ step: 60, total_steps: 200 })).toBeCloseTo(0.3);
    expect(progressFraction({ step: 250, total_steps: 200 })).toBe(1);
    expect(progressFraction({ step: 3 })).toBeNull();
    expect(progressFraction(undefined)).toBeNull();
    expect(formatProgress({ step: 60, total_steps: 200 })).toBe('step 60/200 (30 %)');
  });
  it('treats pending and running as active', () => {
    expect(isActive('running')).toBe(true);
    expect(isActive('pending')).toBe(true);
    expect(isActive('completed')).toBe(false);
    expect(isActive('unknown')).toBe(false);
  });
  it('formats durations', () => {
    expect(formatDuration(45)).toBe('45 s');
    expect(formatDuration(200)).toBe('3 min 20 s');
    expect(formatDuration(7500)).toBe('2 h 05 min');
    expect(formatDuration(NaN)).toBe('');
  });
});

describe('toFinetuneCell', () => {
  it('puts the magic line above the config and ends with one newline', () => {
    expect(toFinetuneCell('task: text-classification\nmodel: minilm\n\n')).toBe(
      '%%finetune\ntask: text-classification\nmodel: minilm\n'
    );
  });
});
