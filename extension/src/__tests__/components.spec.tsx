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
    expect(done.textContent).toContain('accuracy 0.9685 vs 0.2135 baseline (+0.755)');
    expect(done.textContent).toContain('5 h ago');
    expect(broken.textContent).toContain('r-broken');
    expect(broken.textContent).toContain('corrupt run.json');
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

  it('offers more runs when the page is not all of them, and explains an empty folder', () => {
    renderList({ total: 250 });
    expect(container.querySelector('.jp-wb-more')!.textContent).toBe('Show 100 more of 247');
    renderList({ runs: [], total: 0 });
    expect(container.querySelector('.jp-wb-empty')!.textContent).toContain('No runs yet in runs/');
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
      finetuned: { accuracy: 0.9685, f1: 0.96 },
      baseline: { accuracy: 0.2135, f1: 0.19 }
    }
  };

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
      ['accuracy', '0.9685', '0.2135', '+0.755'],
      ['f1', '0.96', '0.19', '+0.77']
    ]);
    const captions = Array.from(container.querySelectorAll('figcaption')).map(f => f.textContent);
    expect(captions).toEqual(['training loss', 'accuracy during training', 'learning rate']);
    expect(container.querySelector('pre.jp-wb-config')!.textContent).toBe('task: text-classification\n');
    const buttons = new Map(
      Array.from(container.querySelectorAll('button')).map(b => [b.textContent, b as HTMLButtonElement])
    );
    expect(buttons.get('Stop')!.disabled).toBe(true); // a completed run cannot be stopped
    act(() => buttons.get('Open report')!.click());
    act(() => buttons.get('Open notebook')!.click());
    act(() => buttons.get('Copy as %%finetune')!.click());
    expect(calls).toEqual(['report', 'notebook', 'copy']);
  });
});
