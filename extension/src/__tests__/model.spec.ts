import {
  IMetricsChunk,
  IRunDetail,
  IRunsPage,
  IRunSummary,
  IWorkbenchAPI,
  WorkbenchAPIError
} from '../api';
import { MAX_CHUNKS_PER_LOAD, RunDetailModel, RunsListModel } from '../model';

function run(id: string, status: IRunSummary['status'] = 'completed'): IRunSummary {
  return { id, status, name: id };
}

class FakeAPI implements IWorkbenchAPI {
  pages: IRunsPage[] = [];
  listCalls: Array<[number, number]> = [];
  failList: Error | null = null;
  details: IRunDetail[] = [];
  failRun: Error | null = null;
  maxLimit = 1000;
  chunks: IMetricsChunk[] = [];
  failMetrics: Error | null = null;
  metricOffsets: number[] = [];
  stopped: string[] = [];

  async info() {
    return { version: '0', runs_dir: 'runs', runs_dir_exists: true, max_limit: this.maxLimit };
  }
  async listRuns(offset = 0, limit = 100): Promise<IRunsPage> {
    this.listCalls.push([offset, limit]);
    if (this.failList) {
      throw this.failList;
    }
    if (limit > this.maxLimit) {
      throw new WorkbenchAPIError(`'limit' must be between 1 and ${this.maxLimit}`, 400);
    }
    return this.pages.shift() ?? { runs: [], total: 0, offset, limit, counts: {} };
  }
  async getRun(id: string): Promise<IRunDetail> {
    if (this.failRun) {
      throw this.failRun;
    }
    return this.details.length > 1 ? this.details.shift()! : this.details[0];
  }
  async getMetrics(id: string, offset: number): Promise<IMetricsChunk> {
    this.metricOffsets.push(offset);
    if (this.failMetrics) {
      throw this.failMetrics;
    }
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

  it('never asks for more runs than the server lists at once', async () => {
    const api = new FakeAPI();
    const page = (n: number): IRunsPage => ({
      runs: Array.from({ length: n }, (_, i) => run(`r${i}`)),
      total: 1005,
      offset: 0,
      limit: n,
      counts: {},
      max_limit: 1000,
      runs_dir_exists: true
    });
    const model = new RunsListModel(api, { autoStart: false, pageSize: 400 });
    api.pages.push(page(400));
    await model.refresh();
    expect(model.maxLimit).toBe(1000);
    api.pages.push(page(800), page(1000), page(1000));
    await model.showMore();
    await model.showMore();
    await model.showMore(); // already at the server's maximum
    expect(api.listCalls.map(c => c[1])).toEqual([400, 800, 1000, 1000]);
    expect(model.limit).toBe(1000);
    expect(model.error).toBeNull();
    model.dispose();
  });

  it('learns a smaller server maximum from a refused page and asks again', async () => {
    const api = new FakeAPI();
    api.maxLimit = 50;
    const model = new RunsListModel(api, { autoStart: false, pageSize: 100 });
    await model.refresh();
    expect(api.listCalls.map(c => c[1])).toEqual([100, 50]);
    expect(model.error).toBeNull();
    expect(model.limit).toBe(50);
    expect(model.maxLimit).toBe(50);
    model.dispose();
  });

  it('tells a missing runs folder from an empty one', async () => {
    const api = new FakeAPI();
    api.pages.push({ runs: [], total: 0, offset: 0, limit: 100, counts: {}, runs_dir_exists: false });
    const model = new RunsListModel(api, { autoStart: false });
    expect(model.runsDirExists).toBe(true);
    await model.refresh();
    expect(model.runsDirExists).toBe(false);
    await model.refresh(); // the folder was created
    expect(model.runsDirExists).toBe(true);
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

  it('asks once per load when the server says nothing complete is left to read', async () => {
    const api = new FakeAPI();
    api.details = [detail('completed')];
    // the server's answer for a metrics.jsonl that ends in a half-written line: all complete records, no more
    api.chunks = [{ records: [{ event: 'step', step: 1, loss: 2 }], offset: 40, size: 55, more: false, reset: false }];
    const model = new RunDetailModel(api, 'r1', { autoStart: false });
    await model.refresh();
    expect(api.metricOffsets).toEqual([0]);
    expect(model.offset).toBe(40);
    model.dispose();
  });

  it('stops asking when a reply says more but moves nothing', async () => {
    const api = new FakeAPI();
    api.details = [detail('running')];
    const stuck: IMetricsChunk = { records: [], offset: 40, size: 55, more: true, reset: false };
    api.chunks = [
      { records: [{ event: 'step', step: 1, loss: 2 }], offset: 40, size: 55, more: true, reset: false },
      ...Array.from({ length: 60 }, () => ({ ...stuck }))
    ];
    const model = new RunDetailModel(api, 'r1', { autoStart: false });
    await model.refresh();
    expect(api.metricOffsets).toEqual([0, 40]);
    expect(model.series.loss).toEqual([[1, 2]]);
    expect(model.metricsError).toBeNull();
    model.dispose();
  });

  it('reads the rest of a long finished run at the next poll instead of stopping short', async () => {
    const api = new FakeAPI();
    api.details = [detail('completed')];
    const n = MAX_CHUNKS_PER_LOAD + 7;
    api.chunks = Array.from({ length: n }, (_, i) => ({
      records: [{ event: 'step', step: i + 1, loss: 1 / (i + 1) }],
      offset: 100 * (i + 1),
      size: 100 * n,
      more: i + 1 < n,
      reset: false
    }));
    const model = new RunDetailModel(api, 'r1', { autoStart: false });
    await model.refresh();
    expect(model.series.loss.length).toBe(MAX_CHUNKS_PER_LOAD);
    expect(model.caughtUp).toBe(false);
    expect(model.polling).toBe(true); // finished, but not read to the end yet
    await model.refresh();
    expect(model.series.loss.length).toBe(n);
    expect(model.series.loss[n - 1][0]).toBe(n);
    expect(model.caughtUp).toBe(true);
    expect(model.polling).toBe(false);
    model.dispose();
  });

  it('shows the run when only its metrics cannot be read, and says why beside the curves', async () => {
    const api = new FakeAPI();
    api.details = [detail('completed')];
    api.failMetrics = new WorkbenchAPIError('metrics.jsonl of this run cannot be read (Is a directory): /r/r1/metrics.jsonl', 409);
    const model = new RunDetailModel(api, 'r1', { autoStart: false });
    await model.refresh();
    expect(model.detail!.config).toBe('task: text-classification\n');
    expect(model.error).toBeNull();
    expect(model.metricsError).toContain('metrics.jsonl of this run cannot be read');
    expect(model.polling).toBe(false); // a finished run is not asked again and again
    api.failMetrics = null;
    await model.refresh();
    expect(model.metricsError).toBeNull();
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

  it('says so and stops polling when the run is deleted', async () => {
    const api = new FakeAPI();
    api.details = [detail('running')];
    const model = new RunDetailModel(api, 'r1', { autoStart: false });
    await model.refresh();
    expect(model.gone).toBe(false);
    expect(model.polling).toBe(true);
    api.failRun = new WorkbenchAPIError("no run 'r1' in the runs folder", 404);
    await model.refresh();
    expect(model.gone).toBe(true);
    expect(model.error).toBeNull();
    expect(model.polling).toBe(false);
    model.dispose();
  });

  it('notices a finished run deleted while its view was hidden, when the view is shown again', async () => {
    const api = new FakeAPI();
    api.details = [detail('completed')];
    const model = new RunDetailModel(api, 'r1', { autoStart: false });
    await model.refresh();
    expect(model.polling).toBe(false);
    model.setVisible(false);
    api.failRun = new WorkbenchAPIError("no run 'r1' in the runs folder", 404);
    await new Promise(r => setTimeout(r, 20));
    expect(model.gone).toBe(false); // hidden: nothing asked
    model.setVisible(true);
    await new Promise(r => setTimeout(r, 20));
    expect(model.gone).toBe(true);
    model.dispose();
  });

  it('keeps polling through other errors', async () => {
    const api = new FakeAPI();
    api.details = [detail('running')];
    api.failRun = new WorkbenchAPIError('cannot reach the server', 0);
    const model = new RunDetailModel(api, 'r1', { autoStart: false });
    await model.refresh().catch(() => undefined);
    expect(model.gone).toBe(false);
    expect(model.error).toBe('cannot reach the server');
    expect(model.polling).toBe(true);
    model.dispose();
  });
});
