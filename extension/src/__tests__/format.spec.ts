import {
  deltaDirection,
  deltaTitle,
  formatAge,
  formatDelta,
  formatDuration,
  formatMetric,
  formatProgress,
  formatTick,
  isActive,
  isModelPath,
  metricVsBaseline,
  modelLabel,
  progressFraction,
  resumeCheckpoint,
  runSeconds,
  runsFolderLabel,
  stoppedAt,
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
  it('prints four decimals like the reports, and marks missing values', () => {
    expect(formatMetric(0.968543)).toBe('0.9685');
    expect(formatMetric(1)).toBe('1.0000');
    expect(formatMetric(0)).toBe('0.0000');
    expect(formatMetric(-0.0416666)).toBe('-0.0417');
    expect(formatMetric(999.99991)).toBe('999.9999');
    expect(formatMetric(null)).toBe('—');
    expect(formatMetric(NaN)).toBe('—');
    expect(formatMetric('0.5')).toBe('—');
  });
  it('keeps large and tiny values readable', () => {
    expect(formatMetric(2345.6789)).toBe('2345.7');
    expect(formatMetric(-12345.6)).toBe('-12345.6');
    expect(formatMetric(3.2e7)).toBe('3.200e+7');
    expect(formatMetric(0.00001234)).toBe('1.23e-5');
  });
  it('keeps axis ticks short', () => {
    expect(formatTick(200)).toBe('200');
    expect(formatTick(0.5)).toBe('0.5');
    expect(formatTick(0.00004)).toBe('4e-5');
    expect(formatTick(12345.6)).toBe('12350');
  });
  it('signs the delta against the baseline with four decimals', () => {
    expect(formatDelta(0.9685, 0.2135)).toBe('+0.7550');
    expect(formatDelta(0.2, 0.5)).toBe('−0.3000');
    expect(formatDelta(0.9, 0.9416666)).toBe('−0.0417');
    expect(formatDelta(0.5, 0.5)).toBe('+0.0000');
    expect(formatDelta(4100.5, 30.7)).toBe('+4069.8');
    expect(formatDelta(0.2, null)).toBe('');
  });
  it('judges a delta by the direction of its metric', () => {
    expect(deltaDirection(0.6, 0.93, true)).toBe('worse'); // accuracy fell
    expect(deltaDirection(0.93, 0.6, true)).toBe('better');
    expect(deltaDirection(41, 30.7, false)).toBe('worse'); // perplexity rose
    expect(deltaDirection(12.5, 30.7, false)).toBe('better');
    expect(deltaDirection(0.5, 0.5, true)).toBe('same');
    expect(deltaDirection(0.5, 0.5, undefined)).toBe('same');
    expect(deltaDirection(0.6, 0.5, undefined)).toBeNull(); // direction unknown: no verdict
    expect(deltaDirection(0.6, null, true)).toBeNull();
    expect(deltaTitle('worse', false)).toBe('worse than the baseline (lower is better)');
    expect(deltaTitle('better', true)).toBe('better than the baseline (higher is better)');
    expect(deltaTitle(null, true)).toBe('');
  });
  it('summarizes the main metric against the baseline', () => {
    expect(
      metricVsBaseline({ id: 'r', status: 'completed', main_metric: 'accuracy', value: 0.9685, baseline: 0.2135 })
    ).toBe('accuracy 0.9685 vs 0.2135 baseline');
    expect(
      metricVsBaseline({ id: 'r', status: 'completed', main_metric: 'accuracy', value: 0.9685, baseline: 1.0 })
    ).toBe('accuracy 0.9685 vs 1.0000 baseline');
    expect(metricVsBaseline({ id: 'r', status: 'completed', main_metric: 'f1', value: 0.5 })).toBe('f1 0.5000');
    expect(metricVsBaseline({ id: 'r', status: 'running', main_metric: 'f1' })).toBe('');
  });
  it('says the latest validation value of a run without test metrics as such', () => {
    expect(
      metricVsBaseline({ id: 'r', status: 'interrupted', main_metric: 'accuracy', validation: { value: 0.8125, step: 40 } })
    ).toBe('validation accuracy 0.8125 at step 40');
    expect(metricVsBaseline({ id: 'r', status: 'running', main_metric: 'f1', validation: { value: 0.5 } })).toBe(
      'validation f1 0.5000'
    );
    // test metrics win
    expect(
      metricVsBaseline({ id: 'r', status: 'completed', main_metric: 'f1', value: 0.6, validation: { value: 0.5, step: 9 } })
    ).toBe('f1 0.6000');
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
  it('times a run from its start, else its creation, to its end, else its last update', () => {
    const now = new Date('2026-11-24T12:00:00Z');
    const base = { id: 'r', created_at: '2026-11-24T11:00:00Z' };
    expect(
      runSeconds({ ...base, status: 'completed', started_at: '2026-11-24T11:00:20Z', finished_at: '2026-11-24T11:03:20Z' }, now)
    ).toBe(180);
    // failed before training: never started
    expect(runSeconds({ ...base, status: 'failed', finished_at: '2026-11-24T11:00:45Z' }, now)).toBe(45);
    expect(runSeconds({ ...base, status: 'failed', updated_at: '2026-11-24T11:01:00Z' }, now)).toBe(60);
    expect(runSeconds({ ...base, status: 'running', started_at: '2026-11-24T11:30:00Z' }, now)).toBe(1800);
    expect(runSeconds({ ...base, status: 'pending' }, now)).toBe(3600);
    expect(runSeconds({ ...base, status: 'failed' }, now)).toBeNaN(); // no end known: no duration
    expect(runSeconds({ id: 'r', status: 'unknown' }, now)).toBeNaN();
  });
});

describe('toFinetuneCell', () => {
  it('puts the magic line above the config and ends with one newline', () => {
    expect(toFinetuneCell('task: text-classification\nmodel: minilm\n\n')).toBe(
      '%%finetune\ntask: text-classification\nmodel: minilm\n'
    );
  });
});

describe('runsFolderLabel', () => {
  it('names the folder from the root, or says it is outside the root', () => {
    expect(runsFolderLabel({ runs_dir: 'runs' })).toBe('runs/');
    expect(runsFolderLabel({ runs_dir: 'work/runs/' })).toBe('work/runs/');
    expect(runsFolderLabel({ runs_dir: null, runs_dir_outside_root: true })).toBe(
      'the runs folder (outside the Jupyter root)'
    );
  });
});

describe('modelLabel', () => {
  it.each([
    ['/tmp/ut8/root/tiny-bert', 'tiny-bert'],
    ['/models/tiny-bert/', 'tiny-bert'],
    ['./models/minilm-local', 'minilm-local'],
    ['../shared/bert', 'bert'],
    ['~/models/distilbert', 'distilbert'],
    ['C:\\Users\\me\\models\\bert-base', 'bert-base'],
    ['D:/models/bert-base', 'bert-base'],
    ['\\\\server\\share\\bert', 'bert']
  ])('shows the path %s by its folder name, %s', (model, label) => {
    expect(isModelPath(model)).toBe(true);
    expect(modelLabel(model)).toBe(label);
  });

  it.each([
    'minilm',
    'distilbert-base-uncased',
    'sentence-transformers/all-MiniLM-L6-v2',
    'org/name'
  ])('keeps the hub id or alias %s as it is', model => {
    expect(isModelPath(model)).toBe(false);
    expect(modelLabel(model)).toBe(model);
  });

  it('is empty without a model, and keeps a bare root as it is', () => {
    expect(modelLabel(undefined)).toBe('');
    expect(modelLabel('')).toBe('');
    expect(modelLabel('/')).toBe('/');
    expect(modelLabel('~')).toBe('~');
  });
});

describe('stoppedAt and resumeCheckpoint', () => {
  it('says where a run that is over stopped, from its progress', () => {
    const progress = { step: 117, total_steps: 270 };
    expect(stoppedAt({ status: 'interrupted', progress })).toBe('Stopped at step 117 of 270');
    expect(stoppedAt({ status: 'failed', progress })).toBe('Stopped at step 117 of 270');
    // early stopping: completed before the last step
    expect(stoppedAt({ status: 'completed', progress })).toBe('Stopped at step 117 of 270');
    expect(stoppedAt({ status: 'failed', progress: { step: 270, total_steps: 270 } })).toBe(
      'Stopped after the last training step (270 of 270)'
    );
    expect(stoppedAt({ status: 'interrupted', progress: { step: 12 } })).toBe('Stopped at step 12');
  });

  it('says nothing for a live run, a run that trained every step, or one that never trained', () => {
    expect(stoppedAt({ status: 'running', progress: { step: 117, total_steps: 270 } })).toBe('');
    expect(stoppedAt({ status: 'pending', progress: { step: 0, total_steps: 270 } })).toBe('');
    expect(stoppedAt({ status: 'completed', progress: { step: 270, total_steps: 270 } })).toBe('');
    expect(stoppedAt({ status: 'failed' })).toBe('');
    expect(stoppedAt({ status: 'failed', progress: {} })).toBe('');
  });

  it("reads the checkpoint run.json records, and claims none where it records none", () => {
    const ckpt = '/runs/r-stop/checkpoints/checkpoint-117';
    const run = { id: 'r-stop', status: 'interrupted' as const };
    expect(resumeCheckpoint({ run, info: { resume_from: ckpt } })).toBe(ckpt);
    expect(resumeCheckpoint({ run: { ...run, status: 'failed' }, info: { resume_from: ckpt } })).toBe(ckpt);
    expect(resumeCheckpoint({ run, info: { resume_from: null } })).toBeNull();
    expect(resumeCheckpoint({ run, info: { resume_from: '' } })).toBeNull();
    expect(resumeCheckpoint({ run, info: {} })).toBeNull();
    expect(resumeCheckpoint({ run, info: null })).toBeNull();
    expect(resumeCheckpoint({ run: { ...run, status: 'running' }, info: { resume_from: ckpt } })).toBeNull();
    expect(resumeCheckpoint({ run: { ...run, status: 'completed' }, info: { resume_from: ckpt } })).toBeNull();
  });
});
