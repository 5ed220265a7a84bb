import {
  IMetricsChunk,
  IRunDetail,
  IRunsPage,
  IRunSummary,
  IWorkbenchAPI,
  WorkbenchAPIError
} from '../api';
import { RunDetailModel, RunsListModel } from '../model';

function run(id: string, status: IRunSummary['status'] = 'completed'): IRunSummary {
  return { id, status, name: id };
}

class FakeAPI implements IWorkbenchAPI {
  pages: IRunsPage[] = [];
  listCalls: Array<[number, number]> = [];
  failList: Error | null = null;
  details: IRunDetail[] = [];
  chunks: IMetricsChunk[] = [];
  metricOffsets: number[] = [];
  stopped: string[] = [];

  async info() {
    return { version: '0', runs_dir: 'runs', runs_dir_exists: true };
  }
  async listRuns(offset = 0, limit = 100): Promise<IRunsPage> {
    this.listCalls.push([offset, limit]);
    if (this.failList) {
      throw this.failList;
    }
    return this.pages.shift() ?? { runs: [], total: 0, offset, limit, counts: {} };
  }
  async getRun(id: string): Promise<IRunDetail> {
    return this.details.length > 1 ? this.details.shift()! : this.details[0];
  }
  async getMetrics(id: string, offset: number): Promise<IMetricsChunk> {
    this.metricOffsets.push(offset);
    return this.chunks.shift() ?? { records: [], offset, size: offset, more: false, reset: false };
  }
  async stopRun(id: string) {
    this.stopped.push(id);
  }
  async listTemplates() {
    return [];
  }
  async createNotebook() {
    return { path: 'x.ipynb' };
  }
  reportUrl(id: string) {
    return `/workbench/api/runs/${id}/report`;
  }
}

describe('RunsListModel', () => {
  it('loads a page, reports errors, and grows the page on demand', async () => {
    const api = new FakeAPI();
    api.pages.push({ runs: [run('a', 'running'), run('b')], total: 150, offset: 0, limit: 100, counts: { running: 1 } });
    const model = new RunsListModel(api, { autoStart: false, pageSize: 100 });
    let changes = 0;
    model.changed.connect(() => changes++);
    await model.refresh();
    expect(model.loaded).toBe(true);
    expect(model.runs.map(r => r.id)).toEqual(['a', 'b']);
    expect(model.total).toBe(150);
    expect(changes).toBeGreaterThan(0);

    api.failList = new WorkbenchAPIError('forbidden', 403);
    await model.refresh().catch(() => undefined);
    expect(model.error).toBe('forbidden');
    expect(model.runs.map(r => r.id)).toEqual(['a', 'b']); // last good list stays on screen

    api.failList = null;
    await model.showMore();
    expect(api.listCalls[api.listCalls.length - 1]).toEqual([0, 200]);
    expect(model.error).toBeNull();
    model.dispose();
  });

  it('does not poll while hidden', async () => {
    const api = new FakeAPI();
    const model = new RunsListModel(api, { interval: 20 });
    await new Promise(r => setTimeout(r, 120));
    const visibleCalls = api.listCalls.length;
    expect(visibleCalls).toBeGreaterThanOrEqual(2);
    model.setVisible(false);
    await new Promise(r => setTimeout(r, 30));
    const hiddenStart = api.listCalls.length;
    await new Promise(r => setTimeout(r, 150));
    expect(api.listCalls.length).toBe(hiddenStart);
    model.setVisible(true);
    await new Promise(r => setTimeout(r, 60));
    expect(api.listCalls.length).toBeGreaterThan(hiddenStart);
    model.dispose();
  });

  it('waits for its view when created hidden', async () => {
    const api = new FakeAPI();
    const model = new RunsListModel(api, { interval: 20, visible: false });
    await new Promise(r => setTimeout(r, 100));
    expect(api.listCalls.length).toBe(0);
    model.setVisible(true);
    await new Promise(r => setTimeout(r, 60));
    expect(api.listCalls.length).toBeGreaterThan(0);
    model.dispose();
  });
});

describe('RunDetailModel', () => {
  const detail = (status: IRunSummary['status']): IRunDetail => ({
    run: run('r1', status),
    info: {},
    config: 'task: text-classification\n',
    eval: null
  });

  it('reads metrics incrementally from the last offset and restarts on reset', async () => {
    const api = new FakeAPI();
    api.details = [detail('running')];
    api.chunks = [
      { records: [{ event: 'step', step: 1, loss: 2 }], offset: 40, size: 80, more: true, reset: false },
      { records: [{ event: 'step', step: 2, loss: 1.5 }], offset: 80, size: 80, more: false, reset: false }
    ];
    const model = new RunDetailModel(api, 'r1', { autoStart: false });
    await model.refresh();
    expect(api.metricOffsets).toEqual([0, 40]);
    expect(model.series.loss).toEqual([
      [1, 2],
      [2, 1.5]
    ]);
    api.chunks = [{ records: [{ event: 'step', step: 3, loss: 1 }], offset: 120, size: 120, more: false, reset: false }];
    await model.refresh();
    expect(api.metricOffsets).toEqual([0, 40, 80]);
    expect(model.series.loss.length).toBe(3);
    api.chunks = [{ records: [{ event: 'step', step: 1, loss: 9 }], offset: 30, size: 30, more: false, reset: true }];
    await model.refresh();
    expect(model.series.loss).toEqual([[1, 9]]);
    expect(model.offset).toBe(30);
    model.dispose();
  });

  it('stops and stops polling once the run has finished', async () => {
    const api = new FakeAPI();
    api.details = [detail('running'), detail('interrupted')];
    const model = new RunDetailModel(api, 'r1', { autoStart: false });
    await model.refresh();
    await model.stop();
    expect(api.stopped).toEqual(['r1']);
    expect(model.stopRequested).toBe(true);
    await model.refresh();
    expect(model.run!.status).toBe('interrupted');
    expect(model.stopRequested).toBe(false);
    expect(model.polling).toBe(false); // a finished run does not change
    await model.refresh(); // a refresh by hand still loads
    expect(model.run!.status).toBe('interrupted');
    model.dispose();
  });
});
