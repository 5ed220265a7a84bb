/**
 * React views: the runs list (sidebar) and one run's details (main area). They render a
 * model's state and call back for actions; every user string is rendered as text.
 */
import * as React from 'react';

import { IEval, IRunDetail, IRunSummary } from './api';
import {
  deltaDirection,
  deltaTitle,
  displayName,
  formatAge,
  formatDelta,
  formatDuration,
  formatMetric,
  formatProgress,
  formatTick,
  isActive,
  metricVsBaseline,
  modelLabel,
  progressFraction,
  resumeCheckpoint,
  runSeconds,
  stoppedAt
} from './format';
import { extent, linePath, Point, RunSeries, sparklinePath, stepTicks, ticks } from './series';

export function StatusBadge(props: { status: string }): JSX.Element {
  return (
    <span className={`jp-wb-status jp-wb-status-${props.status}`} title={props.status}>
      {props.status}
    </span>
  );
}

export function ProgressBar(props: { fraction: number | null; label?: string }): JSX.Element | null {
  if (props.fraction === null) {
    return null;
  }
  return (
    <div className="jp-wb-progress" title={props.label}>
      <div className="jp-wb-progress-fill" style={{ width: `${Math.round(props.fraction * 100)}%` }} />
    </div>
  );
}

export function Sparkline(props: { values: number[]; width?: number; height?: number }): JSX.Element | null {
  const width = props.width ?? 84;
  const height = props.height ?? 26;
  const d = sparklinePath(props.values, width, height);
  if (!d) {
    return null;
  }
  return (
    <svg className="jp-wb-sparkline" width={width} height={height} viewBox={`0 0 ${width} ${height}`}>
      <title>training loss</title>
      <path d={d} />
    </svg>
  );
}

/** A signed delta vs the baseline, green when better, red when worse, plain when unchanged. */
export function Delta(props: {
  value: unknown;
  baseline: unknown;
  greaterIsBetter: boolean | null | undefined;
  parens?: boolean;
}): JSX.Element | null {
  const text = formatDelta(props.value, props.baseline);
  if (!text) {
    return null;
  }
  const direction = deltaDirection(props.value, props.baseline, props.greaterIsBetter);
  return (
    <span
      className={`jp-wb-delta${direction ? ` jp-wb-delta-${direction}` : ''}`}
      title={deltaTitle(direction, props.greaterIsBetter) || undefined}
    >
      {props.parens ? `(${text})` : text}
    </span>
  );
}

export interface IRunRowProps {
  run: IRunSummary;
  selected: boolean;
  now: Date;
  onSelect: (id: string) => void;
}

export function RunRow(props: IRunRowProps): JSX.Element {
  const { run, now } = props;
  const metric = metricVsBaseline(run);
  const active = isActive(run.status);
  // a local model folder shows by its name: its full path, cut to fit, would read "/tm…"
  const subtitle = [run.task, modelLabel(run.model)].filter(Boolean).join(' · ');
  const fullSubtitle = [run.task, run.model].filter(Boolean).join(' · ');
  return (
    <li
      className={`jp-wb-run${props.selected ? ' jp-mod-selected' : ''}`}
      data-run-id={run.id}
      data-status={run.status}
      tabIndex={0}
      onClick={() => props.onSelect(run.id)}
      onKeyDown={e => {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          props.onSelect(run.id);
        } else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
          // move through the list as in JupyterLab's file browser
          const next = (e.key === 'ArrowDown' ? e.currentTarget.nextElementSibling : e.currentTarget.previousElementSibling) as
            | HTMLElement
            | null;
          if (next?.classList.contains('jp-wb-run')) {
            e.preventDefault();
            next.focus();
          }
        }
      }}
    >
      <div className="jp-wb-run-title">
        <span className="jp-wb-run-name" title={displayName(run)}>
          {displayName(run)}
        </span>
        <StatusBadge status={run.status} />
      </div>
      <div className="jp-wb-run-sub">
        <span className="jp-wb-run-what" title={fullSubtitle}>
          {subtitle}
        </span>
        <span className="jp-wb-run-age" title={run.created_at || ''}>
          {formatAge(run.created_at, now)}
        </span>
      </div>
      <div className="jp-wb-run-body">
        <div className="jp-wb-run-facts">
          {active && (
            <div className="jp-wb-run-progress">
              <ProgressBar fraction={progressFraction(run.progress)} />
              <span className="jp-wb-run-progress-text">{formatProgress(run.progress)}</span>
            </div>
          )}
          {metric && (
            <div className="jp-wb-run-metric">
              {metric}{' '}
              <Delta value={run.value} baseline={run.baseline} greaterIsBetter={run.greater_is_better} parens />
            </div>
          )}
          {run.error && run.status !== 'completed' && (
            <div className={run.status === 'interrupted' ? 'jp-wb-run-error jp-wb-run-note' : 'jp-wb-run-error'} title={run.error}>
              {run.error}
            </div>
          )}
          {run.eval_error && (
            <div className="jp-wb-run-error" title={run.eval_error}>
              {run.eval_error}
            </div>
          )}
        </div>
        <Sparkline values={run.loss_sparkline || []} />
      </div>
    </li>
  );
}

export interface IRunsListProps {
  runs: ReadonlyArray<IRunSummary>;
  total: number;
  loaded: boolean;
  error: string | null;
  runsDir: string;
  /** False when the runs folder does not exist (yet). */
  runsDirExists?: boolean;
  /** Runs one "Show more" adds. */
  pageSize?: number;
  /** The most runs the server lists at once. */
  maxRuns?: number;
  selected: string | null;
  now?: Date;
  onSelect: (id: string) => void;
  onRefresh: () => void;
  onShowMore: () => void;
}

export function RunsList(props: IRunsListProps): JSX.Element {
  const now = props.now ?? new Date();
  const runsDir = props.runsDir || 'runs/';
  let body: JSX.Element;
  if (!props.loaded && !props.error) {
    body = <div className="jp-wb-empty">Loading runs…</div>;
  } else if (!props.runs.length && props.loaded && props.runsDirExists === false) {
    body = (
      <div className="jp-wb-empty">
        The runs folder <code>{runsDir}</code> does not exist yet; runs started from this server will create it.
      </div>
    );
  } else if (!props.runs.length) {
    body = (
      <div className="jp-wb-empty">
        No runs yet in <code>{runsDir}</code>. Start one from a fine-tuning notebook (File → New
        Launcher → Fine-tuning) or with <code>%%finetune</code>.
      </div>
    );
  } else {
    body = (
      <ul className="jp-wb-runs">
        {props.runs.map(run => (
          <RunRow key={run.id} run={run} now={now} selected={run.id === props.selected} onSelect={props.onSelect} />
        ))}
      </ul>
    );
  }
  const shown = props.runs.length;
  const more = props.total - shown;
  const maxRuns = props.maxRuns ?? 1000;
  const next = Math.min(more, props.pageSize ?? 100, maxRuns - shown);
  return (
    <div className="jp-wb-panel">
      <div className="jp-wb-top">
        <header className="jp-wb-header">
          <h2>Fine-tuning runs</h2>
          <button className="jp-wb-button jp-wb-refresh" title="Refresh" onClick={props.onRefresh}>
            ↻
          </button>
        </header>
        <div className="jp-wb-subheader">
          <span>
            {props.total} run{props.total === 1 ? '' : 's'} in <code>{runsDir}</code>
          </span>
        </div>
        {props.error && <div className="jp-wb-error">Cannot list runs: {props.error}</div>}
      </div>
      {body}
      {more > 0 && shown > 0 && next > 0 && (
        <button className="jp-wb-button jp-wb-more" onClick={props.onShowMore}>
          Show {next} more ({shown} of {props.total} shown)
        </button>
      )}
      {more > 0 && shown > 0 && next <= 0 && (
        <div className="jp-wb-empty jp-wb-capped">
          Showing the newest {shown} of {props.total} runs; the sidebar lists at most {maxRuns}.
        </div>
      )}
    </div>
  );
}

export interface IChartProps {
  title: string;
  series: { name: string; points: Point[] }[];
  width?: number;
  height?: number;
}

/** A small line chart over training steps, with axis ticks; several series share one scale. */
export function LineChart(props: IChartProps): JSX.Element | null {
  const width = props.width ?? 420;
  const height = props.height ?? 182;
  const m = { left: 48, right: 10, top: 8, bottom: 34 };
  const all = props.series.flatMap(s => s.points);
  const scale = extent(all);
  if (!scale) {
    return null;
  }
  // the steps logged, not the scale: a single step is padded on either side, and those are no steps
  let first = Infinity;
  let last = -Infinity;
  for (const [px] of all) {
    first = Math.min(first, px);
    last = Math.max(last, px);
  }
  const w = width - m.left - m.right;
  const h = height - m.top - m.bottom;
  const x = (v: number) => m.left + ((v - scale.x0) / (scale.x1 - scale.x0)) * w;
  const y = (v: number) => m.top + h - ((v - scale.y0) / (scale.y1 - scale.y0)) * h;
  return (
    <figure className="jp-wb-chart">
      <figcaption>{props.title}</figcaption>
      <svg width={width} height={height} viewBox={`0 0 ${width} ${height}`}>
        {ticks(scale.y0, scale.y1).map(t => (
          <g key={`y${t}`} className="jp-wb-tick">
            <line x1={m.left} x2={width - m.right} y1={y(t)} y2={y(t)} />
            <text x={m.left - 4} y={y(t) + 3} textAnchor="end">
              {formatTick(t)}
            </text>
          </g>
        ))}
        {stepTicks(first, last).map(t => (
          // steps print whole: 4 significant digits would make step 12345 "12350"
          <text key={`x${t}`} className="jp-wb-tick" x={x(t)} y={m.top + h + 13} textAnchor="middle">
            {String(t)}
          </text>
        ))}
        <g className="jp-wb-tick jp-wb-axis-label">
          <text x={m.left + w / 2} y={height - 3} textAnchor="middle">
            step
          </text>
        </g>
        <g transform={`translate(${m.left},${m.top})`}>
          {props.series.map((s, i) =>
            s.points.length > 1 ? (
              <path key={s.name} className={`jp-wb-line jp-wb-series-${i % 4}`} d={linePath(s.points, w, h, scale, 0)} />
            ) : (
              // one point draws no line: a marker, with its value on hover
              s.points.map(([px, py]) => (
                <circle
                  key={s.name}
                  className={`jp-wb-point jp-wb-series-${i % 4}`}
                  cx={x(px) - m.left}
                  cy={y(py) - m.top}
                  r={3.5}
                >
                  <title>{`${s.name} ${formatTick(py)} at step ${px}`}</title>
                </circle>
              ))
            )
          )}
        </g>
      </svg>
      {props.series.length > 1 && (
        <div className="jp-wb-legend">
          {props.series.map((s, i) => (
            <span key={s.name} className={`jp-wb-series-${i % 4}`}>
              {s.name}
            </span>
          ))}
        </div>
      )}
    </figure>
  );
}

export function MetricsTable(props: {
  evaluation: IEval;
  greaterIsBetter?: Record<string, boolean>;
}): JSX.Element | null {
  const ev = props.evaluation;
  const directions = props.greaterIsBetter ?? {};
  const finetuned = ev.finetuned || {};
  const baseline = ev.baseline || {};
  const names = Array.from(new Set([...Object.keys(finetuned), ...Object.keys(baseline)])).filter(
    n => typeof finetuned[n] === 'number' || typeof baseline[n] === 'number'
  );
  if (!names.length) {
    return null;
  }
  names.sort((a, b) => (a === ev.main_metric ? -1 : b === ev.main_metric ? 1 : a.localeCompare(b)));
  return (
    <table className="jp-wb-metrics">
      <thead>
        <tr>
          <th>{ev.split ? `metric (${ev.split})` : 'metric'}</th>
          <th>fine-tuned</th>
          <th>baseline</th>
          <th>Δ</th>
        </tr>
      </thead>
      <tbody>
        {names.map(n => (
          <tr key={n} className={n === ev.main_metric ? 'jp-wb-main-metric' : ''}>
            <td>{n}</td>
            <td>{formatMetric(finetuned[n])}</td>
            <td>{formatMetric(baseline[n])}</td>
            <td>
              <Delta value={finetuned[n]} baseline={baseline[n]} greaterIsBetter={directions[n]} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export interface IRunDetailProps {
  detail: IRunDetail | null;
  series: RunSeries;
  error: string | null;
  stopRequested: boolean;
  /** The run no longer exists on the server. */
  gone?: boolean;
  now?: Date;
  onOpenReport: () => void;
  onOpenNotebook: () => void;
  onStop: () => void;
  onCopyConfig: () => void;
  onRefresh: () => void;
  /** Why the curves could not be read, when the rest of the run could. */
  metricsError?: string | null;
}

export function RunDetailView(props: IRunDetailProps): JSX.Element {
  const { detail, series } = props;
  if (props.gone) {
    return (
      <div className="jp-wb-detail">
        {detail && (
          <header className="jp-wb-detail-header">
            <h1>{displayName(detail.run)}</h1>
          </header>
        )}
        <div className="jp-wb-empty jp-wb-gone">
          This run no longer exists: it was deleted or moved out of the runs folder.
        </div>
      </div>
    );
  }
  if (!detail) {
    return (
      <div className="jp-wb-detail">
        {props.error ? <div className="jp-wb-error">{props.error}</div> : <div className="jp-wb-empty">Loading…</div>}
      </div>
    );
  }
  const run = detail.run;
  const active = isActive(run.status);
  const duration = formatDuration(runSeconds(run, props.now));
  const resumed = run.resumed_from;
  const model = run.model ? (
    <span className="jp-wb-model" title={run.model}>
      {modelLabel(run.model)}
    </span>
  ) : null;
  const facts: React.ReactNode[] = [
    run.task,
    model,
    resumed?.run &&
      `resumed from ${resumed.run}${typeof resumed.step === 'number' ? ` at step ${resumed.step}` : ''}`,
    run.created_at && `started ${formatAge(run.created_at, props.now)}`,
    duration && (active ? `running for ${duration}` : `took ${duration}`)
  ].filter(Boolean);
  const stopped = active ? '' : stoppedAt(run);
  const checkpoint = resumeCheckpoint(detail);
  const main = detail.eval?.main_metric || run.main_metric || '';
  const evalCurves = Array.from(series.evals.entries())
    .filter(([key]) => key.endsWith(`/${main}`))
    .map(([key, points]) => ({ name: key, points }));
  return (
    <div className="jp-wb-detail">
      <header className="jp-wb-detail-header">
        <h1>{displayName(run)}</h1>
        <StatusBadge status={run.status} />
      </header>
      <div className="jp-wb-facts">
        {facts.map((fact, i) => (
          <React.Fragment key={i}>
            {i > 0 && ' · '}
            {fact}
          </React.Fragment>
        ))}
      </div>
      <div className="jp-wb-id">{run.id}</div>
      <div className="jp-wb-actions">
        <button
          className="jp-wb-button"
          disabled={!run.has_report}
          title={run.has_report ? 'Open report.html in a tab' : 'This run has no report (workbench report makes one)'}
          onClick={props.onOpenReport}
        >
          Open report
        </button>
        <button
          className="jp-wb-button"
          disabled={!run.notebook}
          title={run.notebook ? 'Open report.ipynb' : 'This run has no notebook under the server root'}
          onClick={props.onOpenNotebook}
        >
          Open notebook
        </button>
        <button
          className="jp-wb-button jp-wb-stop"
          disabled={!active || props.stopRequested}
          title={
            active
              ? 'End the run at its next step; it keeps a resumable checkpoint'
              : `The run is ${run.status}: there is nothing to stop`
          }
          onClick={props.onStop}
        >
          {props.stopRequested ? 'Stopping…' : 'Stop'}
        </button>
        <button
          className="jp-wb-button"
          disabled={!detail.config}
          title="Copy the run's config as a %%finetune cell (run %load_ext workbench first)"
          onClick={props.onCopyConfig}
        >
          Copy as %%finetune
        </button>
        <button className="jp-wb-button" onClick={props.onRefresh}>
          Refresh
        </button>
      </div>
      {props.error && <div className="jp-wb-error">{props.error}</div>}
      {run.error && (
        <div className={run.status === 'interrupted' ? 'jp-wb-note jp-wb-run-failure' : 'jp-wb-error jp-wb-run-failure'}>
          {run.error}
        </div>
      )}
      {stopped && (
        <div className="jp-wb-detail-progress jp-wb-stopped-at">
          <ProgressBar fraction={progressFraction(run.progress)} />
          <span>{stopped}</span>
        </div>
      )}
      {checkpoint && (
        // the line the CLI and the notebook print, to paste into a new run's config or magic line
        <div className="jp-wb-resume">
          Continue with{' '}
          <code style={{ userSelect: 'all', overflowWrap: 'anywhere' }}>train.resume_from={checkpoint}</code>
        </div>
      )}
      {run.eval_error && <div className="jp-wb-error jp-wb-eval-error">Test metrics: {run.eval_error}</div>}
      {active && (
        <div className="jp-wb-detail-progress">
          <ProgressBar fraction={progressFraction(run.progress)} />
          <span>{formatProgress(run.progress)}</span>
        </div>
      )}
      {detail.eval && (
        <section>
          <h3>Final metrics vs baseline</h3>
          <MetricsTable evaluation={detail.eval} greaterIsBetter={detail.greater_is_better} />
        </section>
      )}
      <section className="jp-wb-curves">
        <h3>Curves</h3>
        {props.metricsError ? (
          <div className="jp-wb-error jp-wb-metrics-error">Curves cannot be shown: {props.metricsError}</div>
        ) : (
          !series.loss.length && !evalCurves.length && <div className="jp-wb-empty">No training steps logged yet.</div>
        )}
        <LineChart title="training loss" series={[{ name: 'loss', points: series.loss }]} />
        {evalCurves.length > 0 && <LineChart title={`${main} during training`} series={evalCurves} />}
        <LineChart title="learning rate" series={[{ name: 'learning rate', points: series.learningRate }]} />
      </section>
      <section>
        <h3>Config</h3>
        <pre className="jp-wb-config">{detail.config || '(config.yaml missing)'}</pre>
      </section>
    </div>
  );
}
