/**
 * Pure formatting helpers shared by the sidebar and the detail view (no DOM, no JupyterLab).
 */
import { IInfo, IProgress, IRunDetail, IRunSummary, RunStatus } from './api';

export const ACTIVE_STATUSES: ReadonlyArray<RunStatus> = ['pending', 'running'];

export function isActive(status: RunStatus | undefined): boolean {
  return status !== undefined && ACTIVE_STATUSES.includes(status);
}

/** "just now", "42 s ago", "5 min ago", "3 h ago", "2 d ago", or the date for older runs. */
export function formatAge(iso: string | undefined, now: Date = new Date()): string {
  if (!iso) {
    return '';
  }
  const then = new Date(iso);
  if (isNaN(then.getTime())) {
    return '';
  }
  const seconds = Math.round((now.getTime() - then.getTime()) / 1000);
  if (seconds < 5) {
    return 'just now';
  }
  if (seconds < 60) {
    return `${seconds} s ago`;
  }
  if (seconds < 3600) {
    return `${Math.floor(seconds / 60)} min ago`;
  }
  if (seconds < 86400) {
    return `${Math.floor(seconds / 3600)} h ago`;
  }
  if (seconds < 86400 * 30) {
    return `${Math.floor(seconds / 86400)} d ago`;
  }
  return then.toISOString().slice(0, 10);
}

/** Seconds as "45 s", "3 min 20 s", "2 h 05 min". */
export function formatDuration(seconds: number): string {
  if (!isFinite(seconds) || seconds < 0) {
    return '';
  }
  const s = Math.round(seconds);
  if (s < 60) {
    return `${s} s`;
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  }
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

/**
 * A metric value as the reports print it: 4 decimals ("0.9685", "1.0000"); one decimal from a
 * thousand on ("2345.7"), an exponent from a million on and for tiny values; an em dash when absent.
 */
export function formatMetric(value: unknown): string {
  if (typeof value !== 'number' || !isFinite(value)) {
    return '—';
  }
  const size = Math.abs(value);
  if (size >= 1e6) {
    return value.toExponential(3);
  }
  if (size >= 1e3) {
    return value.toFixed(1);
  }
  if (value !== 0 && size < 1e-4) {
    return value.toExponential(2);
  }
  return value.toFixed(4);
}

/** An axis tick: 4 significant digits, no trailing zeros ("0.5", "1.2e-5", "200"). */
export function formatTick(value: number): string {
  if (!isFinite(value)) {
    return '';
  }
  if (value !== 0 && Math.abs(value) < 1e-3) {
    return Number(value.toPrecision(3)).toExponential();
  }
  return Number(value.toPrecision(4)).toString();
}

/** The signed difference, e.g. "+0.7550" or "−0.0417"; empty when either side is missing. */
export function formatDelta(value: unknown, baseline: unknown): string {
  if (
    typeof value !== 'number' ||
    typeof baseline !== 'number' ||
    !isFinite(value) ||
    !isFinite(baseline)
  ) {
    return '';
  }
  const d = value - baseline;
  const text = formatMetric(Math.abs(d));
  return d >= 0 ? `+${text}` : `−${text}`;
}

export type DeltaDirection = 'better' | 'worse' | 'same';

/**
 * Whether `value` improves on `baseline`, given the metric's direction; null when a side is
 * missing or the direction is unknown (then the delta is shown without a verdict).
 */
export function deltaDirection(
  value: unknown,
  baseline: unknown,
  greaterIsBetter: boolean | null | undefined
): DeltaDirection | null {
  if (!formatDelta(value, baseline)) {
    return null;
  }
  const d = (value as number) - (baseline as number);
  if (d === 0) {
    return 'same';
  }
  if (typeof greaterIsBetter !== 'boolean') {
    return null;
  }
  return d > 0 === greaterIsBetter ? 'better' : 'worse';
}

/** Words for a delta's tooltip, e.g. "better than the baseline (lower is better)". */
export function deltaTitle(direction: DeltaDirection | null, greaterIsBetter: boolean | null | undefined): string {
  if (direction === null) {
    return '';
  }
  if (direction === 'same') {
    return 'same as the baseline';
  }
  const rule = greaterIsBetter ? 'higher is better' : 'lower is better';
  return `${direction} than the baseline (${rule})`;
}

/** "accuracy 0.9685 vs 0.2135 baseline" for a list row; empty when the run has no result yet. */
export function metricVsBaseline(run: IRunSummary): string {
  if (!run.main_metric) {
    return '';
  }
  if (typeof run.value !== 'number') {
    // no test metrics (running, stopped): the latest validation value, said as such
    const v = run.validation;
    if (!v || typeof v.value !== 'number') {
      return '';
    }
    const at = typeof v.step === 'number' ? ` at step ${v.step}` : '';
    return `validation ${run.main_metric} ${formatMetric(v.value)}${at}`;
  }
  const base =
    typeof run.baseline === 'number'
      ? ` vs ${formatMetric(run.baseline)} baseline`
      : '';
  return `${run.main_metric} ${formatMetric(run.value)}${base}`;
}

/**
 * Seconds a run took, or has been running: from its start (else its creation) to its end (else its
 * last update); NaN when unknown.
 */
export function runSeconds(run: IRunSummary, now: Date = new Date()): number {
  const start = Date.parse(run.started_at || run.created_at || '');
  const end = isActive(run.status) ? now.getTime() : Date.parse(run.finished_at || run.updated_at || '');
  return (end - start) / 1000;
}

/** Fraction of training done in [0, 1], or null when the run reports no total. */
export function progressFraction(progress: IProgress | undefined): number | null {
  if (!progress || !progress.total_steps || progress.step === undefined) {
    return null;
  }
  return Math.max(0, Math.min(1, progress.step / progress.total_steps));
}

export function formatProgress(progress: IProgress | undefined): string {
  const f = progressFraction(progress);
  if (f === null || !progress) {
    return '';
  }
  return `step ${progress.step}/${progress.total_steps} (${Math.round(f * 100)} %)`;
}

/**
 * Where a run that is over got to, from its last progress: "Stopped at step 117 of 270" for one that
 * ended before its last step (stopped, failed, or early-stopped), "Stopped after the last training
 * step (270 of 270)" for one that failed after training; empty for a completed run that trained every step and
 * for a run with no step recorded (it ended before training).
 */
export function stoppedAt(run: Pick<IRunSummary, 'status' | 'progress'>): string {
  const p = run.progress;
  if (isActive(run.status) || !p || typeof p.step !== 'number' || !isFinite(p.step)) {
    return '';
  }
  const total = typeof p.total_steps === 'number' && p.total_steps > 0 ? p.total_steps : null;
  if (total === null) {
    return run.status === 'completed' ? '' : `Stopped at step ${p.step}`;
  }
  if (p.step < total) {
    return `Stopped at step ${p.step} of ${total}`;
  }
  return run.status === 'completed' ? '' : `Stopped after the last training step (${p.step} of ${total})`;
}

/**
 * The checkpoint a stopped or failed run can be continued from: run.json's `resume_from` (the run
 * records it when it ends with a complete checkpoint); null where none is recorded.
 */
export function resumeCheckpoint(detail: Pick<IRunDetail, 'run' | 'info'>): string | null {
  if (detail.run.status !== 'interrupted' && detail.run.status !== 'failed') {
    return null;
  }
  const value = detail.info?.resume_from;
  return typeof value === 'string' && value.trim() ? value : null;
}

/** The resolved config as a notebook cell that reproduces the run. */
export function toFinetuneCell(configYaml: string): string {
  const body = configYaml.replace(/\s+$/, '');
  return `%%finetune\n${body}\n`;
}

/**
 * Whether a run's `model` names a local folder rather than a hub id ("org/name") or an alias
 * ("minilm"): an absolute, home or dot-relative path, or one with a Windows drive ("C:\models").
 */
export function isModelPath(model: string): boolean {
  return /^(?:[\\/~]|\.\.?[\\/])/.test(model) || /(?:^|[^A-Za-z])[A-Za-z]:[\\/]/.test(model);
}

/**
 * A model as a narrow line shows it: a local folder by its last path component (its full path is
 * long and would be cut to "/tm…"), any other name as it is.
 */
export function modelLabel(model: string | null | undefined): string {
  if (!model) {
    return '';
  }
  if (!isModelPath(model)) {
    return model;
  }
  const parts = model.split(/[\\/]+/).filter(p => p && p !== '.' && !/^[A-Za-z]:$/.test(p));
  return parts.length ? parts[parts.length - 1] : model;
}

/** A display name: the run's name, else its id. */
export function displayName(run: IRunSummary): string {
  return run.name || run.id;
}

/**
 * The runs folder as the sidebar names it: its path from the Jupyter root with a trailing slash, or
 * words where it lies outside the root (the server names no path of its own file system).
 */
export function runsFolderLabel(info: Pick<IInfo, 'runs_dir' | 'runs_dir_outside_root'>): string {
  if (info.runs_dir === null || info.runs_dir === undefined || info.runs_dir_outside_root) {
    return 'the runs folder (outside the Jupyter root)';
  }
  return info.runs_dir.endsWith('/') ? info.runs_dir : `${info.runs_dir}/`;
}
