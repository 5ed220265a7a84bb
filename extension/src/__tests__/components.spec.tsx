(globalThis as any).IS_REACT_ACT_ENVIRONMENT = true;

import * as React from 'react';
import { act } from 'react';
import { createRoot, Root } from 'react-dom/client';

import { IRunDetail, IRunSummary } from '../api';
import { RunDetailView, RunsList } from '../components';
import { RunSeries } from '../series';

let container: HTMLDivElement;
let root: Root;

beforeEach(() => {
  container = document.createElement('div');
  document.body.appendChild(container);
  root = createRoot(container);
});

afterEach(() => {
  act(() => root.unmount());
  container.remove();
});

const now = new Date('2026-11-24T12:00:00Z');
const runs: IRunSummary[] = [
  {
    id: 'r-running',
    name: 'support-tickets',
    status: 'running',
    task: 'text-classification',
    model: 'minilm',
    created_at: '2026-11-24T11:56:00Z',
    progress: { step: 60, total_steps: 200 },
    loss_sparkline: [1.6, 1.2, 0.9, 0.7]
  },
  {
    id: 'r-done',
    name: '<img src=x onerror="window.pwned=1">',
    status: 'completed',
    main_metric: 'accuracy',
    value: 0.9685,
    baseline: 0.2135,
    greater_is_better: true,
    created_at: '2026-11-24T07:00:00Z'
  },
  { id: 'r-broken', status: 'unknown', error: 'corrupt run.json' }
];

function renderList(extra: Partial<React.ComponentProps<typeof RunsList>> = {}) {
  const onSelect = jest.fn();
  act(() =>
    root.render(
      <RunsList
        runs={runs}
        total={3}
        loaded={true}
        error={null}
        runsDir="runs/"
        selected={null}
        now={now}
        onSelect={onSelect}
        onRefresh={() => undefined}
        onShowMore={() => undefined}
        {...extra}
      />
    )
  );
  return onSelect;
}

describe('RunsList', () => {
  it('shows every run with status, progress, metric vs baseline, age and a sparkline', () => {
    renderList();
    const rows = container.querySelectorAll('li.jp-wb-run');
    expect(rows.length).toBe(3);
    const [running, done, broken] = Array.from(rows);
    expect(running.getAttribute('data-status')).toBe('running');
    expect(running.textContent).toContain('text-classification · minilm');
    expect(running.textContent).toContain('step 60/200 (30 %)');
    expect(running.textContent).toContain('4 min ago');
    expect(running.querySelector('svg.jp-wb-sparkline path')!.getAttribute('d')).toMatch(/^M/);
    expect(done.textContent).toContain('accuracy 0.9685 vs 0.2135 baseline (+0.7550)');
    expect(done.textContent).toContain('5 h ago');
    expect(broken.textContent).toContain('r-broken');
    expect(broken.textContent).toContain('corrupt run.json');
    // a reason cut to two lines has its whole text on hover
    expect(broken.querySelector('.jp-wb-run-error')!.getAttribute('title')).toBe('corrupt run.json');
  });

  it('keeps a finished row with a malformed eval.json, saying what is wrong', () => {
    renderList({
      runs: [{ id: 'r-odd', name: 'odd', status: 'completed', eval_error: 'eval.json: baseline is not an object' }]
    });
    const row = container.querySelector('li.jp-wb-run')!;
    expect(row.getAttribute('data-status')).toBe('completed');
    expect(row.querySelector('.jp-wb-run-error')!.textContent).toBe('eval.json: baseline is not an object');
  });

  it('renders user strings as text, never as markup', () => {
    renderList();
    expect(container.querySelector('img')).toBeNull();
    expect(container.textContent).toContain('<img src=x onerror="window.pwned=1">');
    expect((window as any).pwned).toBeUndefined();
  });

  it('selects a run on click and on Enter', () => {
    const onSelect = renderList();
    const rows = container.querySelectorAll('li.jp-wb-run');
    act(() => (rows[1] as HTMLElement).click());
    act(() => {
      rows[0].dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true }));
    });
    expect(onSelect.mock.calls).toEqual([['r-done'], ['r-running']]);
  });

  it('moves between runs with the arrow keys', () => {
    renderList();
    const rows = Array.from(container.querySelectorAll('li.jp-wb-run')) as HTMLElement[];
    rows[0].focus();
    act(() => {
      rows[0].dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowDown', bubbles: true }));
    });
    expect(document.activeElement).toBe(rows[1]);
    act(() => {
      rows[1].dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowUp', bubbles: true }));
    });
    expect(document.activeElement).toBe(rows[0]);
    act(() => {
      rows[0].dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowUp', bubbles: true }));
    });
    expect(document.activeElement).toBe(rows[0]); // the first row stays
  });

  it('offers more runs when the page is not all of them, and explains an empty folder', () => {
    renderList({ total: 250 });
    expect(container.querySelector('.jp-wb-more')!.textContent).toBe('Show 100 more (3 of 250 shown)');
    renderList({ total: 50 });
    expect(container.querySelector('.jp-wb-more')!.textContent).toBe('Show 47 more (3 of 50 shown)');
    renderList({ total: 3 });
    expect(container.querySelector('.jp-wb-more')).toBeNull();
    renderList({ runs: [], total: 0 });
    expect(container.querySelector('.jp-wb-empty')!.textContent).toContain('No runs yet in runs/');
  });

  it('says when the list is capped at the server maximum instead of offering more', () => {
    renderList({ total: 1005, maxRuns: 3 });
    expect(container.querySelector('.jp-wb-more')).toBeNull();
    expect(container.querySelector('.jp-wb-capped')!.textContent).toBe(
      'Showing the newest 3 of 1005 runs; the sidebar lists at most 3.'
    );
    renderList({ total: 1005, maxRuns: 5, pageSize: 100 });
    expect(container.querySelector('.jp-wb-more')!.textContent).toBe('Show 2 more (3 of 1005 shown)');
  });

  it('tells a runs folder that does not exist from an empty one', () => {
    renderList({ runs: [], total: 0, runsDirExists: false, runsDir: 'exp/runs/' });
    const text = container.querySelector('.jp-wb-empty')!.textContent;
    expect(text).toBe('The runs folder exp/runs/ does not exist yet; runs started from this server will create it.');
  });

  it('shows the full name of a run as a tooltip', () => {
    const long = 'an-extremely-long-run-name-without-any-spaces-that-the-sidebar-cannot-fit';
    renderList({ runs: [{ ...runs[0], name: long }], total: 1 });
    expect(container.querySelector('.jp-wb-run-name')!.getAttribute('title')).toBe(long);
  });

  it('shows a local model by its folder name, with the full path as a tooltip', () => {
    const local = { ...runs[0], model: '/tmp/ut8/root/tiny-bert' };
    const hub = { ...runs[0], id: 'r-hub', model: 'sentence-transformers/all-MiniLM-L6-v2' };
    renderList({ runs: [local, hub], total: 2 });
    const [first, second] = Array.from(container.querySelectorAll('.jp-wb-run-what'));
    expect(first.textContent).toBe('text-classification · tiny-bert');
    expect(first.getAttribute('title')).toBe('text-classification · /tmp/ut8/root/tiny-bert');
    expect(second.textContent).toBe('text-classification · sentence-transformers/all-MiniLM-L6-v2');
  });

  it('colours a delta by whether the metric improved', () => {
    const row = (id: string, main_metric: string, value: number, baseline: number, greater: boolean): IRunSummary => ({
      id,
      status: 'completed',
      main_metric,
      value,
      baseline,
      greater_is_better: greater
    });
    const rows = [
      row('acc-up', 'accuracy', 0.9, 0.6, true),
      row('acc-down', 'accuracy', 0.6, 0.93, true),
      row('ppl-up', 'perplexity', 41, 30.7, false),
      row('ppl-down', 'perplexity', 12, 30.7, false),
      row('same', 'f1', 0.5, 0.5, true)
    ];
    renderList({ runs: rows, total: rows.length });
    const deltas = Array.from(container.querySelectorAll('.jp-wb-delta')).map(d => [d.textContent, d.className]);
    expect(deltas).toEqual([
      ['(+0.3000)', 'jp-wb-delta jp-wb-delta-better'],
      ['(−0.3300)', 'jp-wb-delta jp-wb-delta-worse'],
      ['(+10.3000)', 'jp-wb-delta jp-wb-delta-worse'],
      ['(−18.7000)', 'jp-wb-delta jp-wb-delta-better'],
      ['(+0.0000)', 'jp-wb-delta jp-wb-delta-same']
    ]);
    expect(container.querySelectorAll('.jp-wb-delta')[2].getAttribute('title')).toBe(
      'worse than the baseline (lower is better)'
    );
  });
});

describe('RunDetailView', () => {
  const detail: IRunDetail = {
    run: { ...runs[1], name: 'bbc-news-minilm', has_report: true, notebook: 'runs/r-done/report.ipynb' },
    info: {},
    config: 'task: text-classification\n',
    eval: {
      main_metric: 'accuracy',
      split: 'test',
      finetuned: { accuracy: 0.9685, f1: 0.96, loss: 0.4 },
      baseline: { accuracy: 0.2135, f1: 0.19, loss: 0.3 }
    },
    greater_is_better: { accuracy: true, f1: true, loss: false }
  };

  function renderDetail(extra: Partial<React.ComponentProps<typeof RunDetailView>> = {}) {
    act(() =>
      root.render(
        <RunDetailView
          detail={detail}
          series={new RunSeries()}
          error={null}
          stopRequested={false}
          now={now}
          onOpenReport={() => undefined}
          onOpenNotebook={() => undefined}
          onStop={() => undefined}
          onCopyConfig={() => undefined}
          onRefresh={() => undefined}
          {...extra}
        />
      )
    );
  }

  it('shows metrics vs baseline, curves and config, and wires the buttons', () => {
    const series = new RunSeries();
    series.add([
      { event: 'step', step: 1, loss: 1.5, learning_rate: 5e-5 },
      { event: 'step', step: 2, loss: 1.0, learning_rate: 4e-5 },
      { event: 'eval', step: 2, split: 'validation', metrics: { accuracy: 0.7 } }
    ]);
    const calls: string[] = [];
    act(() =>
      root.render(
        <RunDetailView
          detail={detail}
          series={series}
          error={null}
          stopRequested={false}
          now={now}
          onOpenReport={() => calls.push('report')}
          onOpenNotebook={() => calls.push('notebook')}
          onStop={() => calls.push('stop')}
          onCopyConfig={() => calls.push('copy')}
          onRefresh={() => calls.push('refresh')}
        />
      )
    );
    const rows = Array.from(container.querySelectorAll('table.jp-wb-metrics tbody tr')).map(r =>
      Array.from(r.querySelectorAll('td')).map(td => td.textContent)
    );
    expect(rows).toEqual([
      ['accuracy', '0.9685', '0.2135', '+0.7550'],
      ['f1', '0.9600', '0.1900', '+0.7700'],
      ['loss', '0.4000', '0.3000', '+0.1000']
    ]);
    const verdicts = Array.from(container.querySelectorAll('table.jp-wb-metrics .jp-wb-delta')).map(d => d.className);
    expect(verdicts).toEqual([
      'jp-wb-delta jp-wb-delta-better',
      'jp-wb-delta jp-wb-delta-better',
      'jp-wb-delta jp-wb-delta-worse'
    ]);
    const captions = Array.from(container.querySelectorAll('figcaption')).map(f => f.textContent);
    expect(captions).toEqual(['training loss', 'accuracy during training', 'learning rate']);
    expect(container.querySelector('pre.jp-wb-config')!.textContent).toBe('task: text-classification\n');
    const buttons = new Map(
      Array.from(container.querySelectorAll('button')).map(b => [b.textContent, b as HTMLButtonElement])
    );
    expect(buttons.get('Stop')!.disabled).toBe(true); // a completed run cannot be stopped
    expect(buttons.get('Stop')!.title).toBe('The run is completed: there is nothing to stop');
    expect(buttons.get('Copy as %%finetune')!.title).toContain('%load_ext workbench');
    act(() => buttons.get('Open report')!.click());
    act(() => buttons.get('Open notebook')!.click());
    act(() => buttons.get('Copy as %%finetune')!.click());
    expect(calls).toEqual(['report', 'notebook', 'copy']);
  });

  it('draws a single evaluation as a marker, with whole steps on the axis', () => {
    const series = new RunSeries();
    series.add([
      { event: 'step', step: 1, loss: 1.5 },
      { event: 'step', step: 2, loss: 1.2 },
      { event: 'step', step: 3, loss: 1.0 },
      { event: 'eval', step: 3, split: 'validation', metrics: { accuracy: 0.8 } }
    ]);
    renderDetail({ series });
    const accuracy = Array.from(container.querySelectorAll('figure')).find(
      f => f.querySelector('figcaption')!.textContent === 'accuracy during training'
    )!;
    expect(accuracy.querySelectorAll('path.jp-wb-line').length).toBe(0);
    const point = accuracy.querySelector('circle.jp-wb-point')!;
    expect(point).not.toBeNull();
    expect(point.querySelector('title')!.textContent).toBe('validation/accuracy 0.8 at step 3');
    const loss = container.querySelector('figure')!;
    expect(loss.querySelectorAll('path.jp-wb-line').length).toBe(1);
    const stepTicks = Array.from(loss.querySelectorAll('svg > text.jp-wb-tick')).map(t => t.textContent);
    expect(stepTicks.length).toBeGreaterThan(1);
    expect(stepTicks.every(t => /^\d+$/.test(t!))).toBe(true); // no "1.5" steps
  });

  it('shows a stop the user asked for as a note, and why the curves are missing', () => {
    renderDetail({
      detail: { ...detail, eval: null, run: { ...detail.run, status: 'interrupted', error: 'stopped on request' } },
      metricsError: 'metrics.jsonl of this run cannot be read (Is a directory): /r/metrics.jsonl'
    });
    const stopped = container.querySelector('.jp-wb-run-failure')!;
    expect(stopped.textContent).toBe('stopped on request');
    expect(stopped.className).toContain('jp-wb-note');
    expect(stopped.className).not.toContain('jp-wb-error');
    expect(container.querySelector('.jp-wb-metrics-error')!.textContent).toBe(
      'Curves cannot be shown: metrics.jsonl of this run cannot be read (Is a directory): /r/metrics.jsonl'
    );
    expect(container.querySelector('pre.jp-wb-config')!.textContent).toBe('task: text-classification\n');
    renderDetail({ detail: { ...detail, run: { ...detail.run, status: 'failed', error: 'DataError: bad' } } });
    expect(container.querySelector('.jp-wb-run-failure')!.className).toContain('jp-wb-error');
  });

  it('says where an interrupted run stopped and how to continue it', () => {
    const checkpoint = '/work/runs/r-stop/checkpoints/checkpoint-117';
    renderDetail({
      detail: {
        ...detail,
        eval: null,
        info: { status: 'interrupted', resume_from: checkpoint },
        run: {
          ...detail.run,
          status: 'interrupted',
          error: 'stopped on request',
          progress: { step: 117, total_steps: 270 }
        }
      }
    });
    const stopped = container.querySelector('.jp-wb-stopped-at')!;
    expect(stopped.textContent).toBe('Stopped at step 117 of 270');
    const fill = stopped.querySelector('.jp-wb-progress-fill') as HTMLElement;
    expect(fill.style.width).toBe('43%');
    const resume = container.querySelector('.jp-wb-resume')!;
    expect(resume.textContent).toBe(`Continue with train.resume_from=${checkpoint}`);
    expect(resume.querySelector('code')!.textContent).toBe(`train.resume_from=${checkpoint}`);
  });

  it('says where a failed run stopped without claiming a checkpoint it did not record', () => {
    renderDetail({
      detail: {
        ...detail,
        eval: null,
        info: { status: 'failed', resume_from: null },
        run: { ...detail.run, status: 'failed', error: 'CUDA out of memory', progress: { step: 40, total_steps: 540 } }
      }
    });
    expect(container.querySelector('.jp-wb-stopped-at')!.textContent).toBe('Stopped at step 40 of 540');
    expect(container.querySelector('.jp-wb-resume')).toBeNull();
    expect(container.textContent).not.toContain('resume_from');
    // a live run shows its progress, not where it stopped
    renderDetail({
      detail: { ...detail, eval: null, run: { ...detail.run, status: 'running', progress: { step: 40, total_steps: 540 } } }
    });
    expect(container.querySelector('.jp-wb-stopped-at')).toBeNull();
    expect(container.querySelector('.jp-wb-detail-progress')!.textContent).toBe('step 40/540 (7 %)');
    // a completed run that trained every step says nothing of stopping
    renderDetail({ detail: { ...detail, run: { ...detail.run, progress: { step: 270, total_steps: 270 } } } });
    expect(container.querySelector('.jp-wb-stopped-at')).toBeNull();
  });

  it('shows a local model by its folder name in the facts, with the full path as a tooltip', () => {
    renderDetail({
      detail: { ...detail, run: { ...detail.run, task: 'text-classification', model: '/tmp/ut8/root/tiny-bert' } }
    });
    const facts = container.querySelector('.jp-wb-facts')!;
    expect(facts.textContent).toBe('text-classification · tiny-bert · started 5 h ago');
    expect(facts.querySelector('.jp-wb-model')!.getAttribute('title')).toBe('/tmp/ut8/root/tiny-bert');
  });

  it('labels the step axis and its first and last step', () => {
    const series = new RunSeries();
    series.add(
      Array.from({ length: 95 }, (_, i) => ({ event: 'step', step: i + 1, loss: 1 / (i + 1), learning_rate: 3e-3 }))
    );
    renderDetail({ series });
    const loss = container.querySelector('figure')!;
    const stepTicks = Array.from(loss.querySelectorAll('svg > text.jp-wb-tick')).map(t => t.textContent);
    expect(stepTicks).toEqual(['1', '50', '95']);
    expect(loss.querySelector('.jp-wb-axis-label')!.textContent).toBe('step');
  });

  it('says why a finished run shows no test metrics', () => {
    renderDetail({
      detail: { ...detail, eval: null, run: { ...detail.run, eval_error: 'eval.json cannot be read (Expecting value)' } }
    });
    expect(container.querySelector('.jp-wb-eval-error')!.textContent).toBe(
      'Test metrics: eval.json cannot be read (Expecting value)'
    );
    renderDetail({ detail });
    expect(container.querySelector('.jp-wb-eval-error')).toBeNull();
  });

  it('names the run a resumed run continues', () => {
    renderDetail({
      detail: { ...detail, run: { ...detail.run, resumed_from: { run: '20261124-150200-live2-c3d4', step: 326 } } }
    });
    expect(container.querySelector('.jp-wb-facts')!.textContent).toContain(
      'resumed from 20261124-150200-live2-c3d4 at step 326'
    );
  });

  it('times a run that failed before training from its creation to its end', () => {
    renderDetail({
      detail: {
        ...detail,
        eval: null,
        run: {
          id: 'r-early',
          name: 'early',
          status: 'failed',
          created_at: '2026-11-24T11:49:00Z',
          finished_at: '2026-11-24T11:49:12Z',
          error: 'DataError: no such file'
        }
      }
    });
    expect(container.querySelector('.jp-wb-facts')!.textContent).toBe('started 11 min ago · took 12 s');
  });

  it('says when the run no longer exists', () => {
    renderDetail({ gone: true });
    expect(container.querySelector('h1')!.textContent).toBe('bbc-news-minilm');
    expect(container.querySelector('.jp-wb-gone')!.textContent).toContain('This run no longer exists');
    expect(container.querySelector('button')).toBeNull();
    renderDetail({ gone: true, detail: null });
    expect(container.querySelector('.jp-wb-gone')!.textContent).toContain('This run no longer exists');
  });
});
