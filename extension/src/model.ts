/**
 * Polling models behind the views: the runs list (sidebar) and one run (detail tab).
 *
 * Views only render what a model holds and listen to `changed`. Polls run a few seconds apart,
 * back off on errors, and stand by while their view is hidden or the browser tab is.
 */
import { IDisposable } from '@lumino/disposable';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { IRunDetail, IRunsPage, IRunSummary, IWorkbenchAPI, WorkbenchAPIError } from './api';
import { isActive } from './format';
import { RunSeries } from './series';

export interface IPollOptions {
  /** Milliseconds between polls (default 3000). */
  interval?: number;
  /** Start polling on construction (default true). */
  autoStart?: boolean;
  /** Whether the view starts out shown (default true); a hidden view's model waits. */
  visible?: boolean;
}

abstract class PollingModel implements IDisposable {
  constructor(options: IPollOptions = {}) {
    const interval = options.interval ?? 3000;
    this._visible = options.visible ?? true;
    this._poll = new Poll({
      auto: false,
      factory: () => this.fetch(),
      frequency: { interval, backoff: true, max: Math.max(interval * 10, 30000) },
      name: `workbench:${this.constructor.name}`,
      standby: () => (this._visible && !this._finished ? 'when-hidden' : true)
    });
    if (options.autoStart ?? true) {
      void this._poll.start();
    }
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get error(): string | null {
    return this._error;
  }

  get visible(): boolean {
    return this._visible;
  }

  get isDisposed(): boolean {
    return this._poll.isDisposed;
  }

  /** False once the model has seen everything it will (a finished run); refresh() still works. */
  get polling(): boolean {
    return !this._finished && !this._poll.isDisposed;
  }

  /** Views call this when shown or hidden; a hidden view's model does not poll. */
  setVisible(visible: boolean): void {
    const was = this._visible;
    this._visible = visible;
    if (visible && !was && !this._poll.isDisposed) {
      if (this._finished) {
        // a finished run no longer polls: look once more when its view comes back (it may have been
        // deleted meanwhile); the answer is cheap, the server says 304 for an unchanged run
        void this.fetch().catch(() => undefined);
      } else {
        void this._poll.refresh();
      }
    }
  }

  /** Load now, outside the schedule. */
  async refresh(): Promise<void> {
    if (this._poll.isDisposed) {
      return;
    }
    if (this._finished) {
      await this.fetch();
      return;
    }
    await this._poll.refresh();
    await this._poll.tick;
  }

  dispose(): void {
    this._poll.dispose();
    Signal.clearData(this);
  }

  protected async fetch(): Promise<void> {
    try {
      await this.load();
      this._error = null;
    } catch (error) {
      this._error = error instanceof Error ? error.message : String(error);
      this._changed.emit();
      throw error; // lets the poll back off
    }
    this._changed.emit();
  }

  /** Stand the poll by for good: what it watches no longer changes. */
  protected stopPolling(): void {
    this._finished = true;
  }

  protected abstract load(): Promise<void>;

  protected readonly _changed = new Signal<this, void>(this);
  private _error: string | null = null;
  private _visible = true;
  private _finished = false;
  private readonly _poll: Poll;
}

/** The largest page of runs the server takes unless it says otherwise (its `max_page_size`). */
export const DEFAULT_MAX_LIMIT = 1000;

/** The runs listing shown in the sidebar. */
export class RunsListModel extends PollingModel {
  constructor(
    readonly api: IWorkbenchAPI,
    options: IPollOptions & { pageSize?: number } = {}
  ) {
    super(options);
    this._pageSize = options.pageSize ?? 100;
    this._limit = Math.min(this._pageSize, this._maxLimit);
  }

  get runs(): ReadonlyArray<IRunSummary> {
    return this._runs;
  }

  get total(): number {
    return this._total;
  }

  get counts(): Readonly<Record<string, number>> {
    return this._counts;
  }

  get loaded(): boolean {
    return this._loaded;
  }

  /** How many of the newest runs are asked for. */
  get limit(): number {
    return this._limit;
  }

  get pageSize(): number {
    return this._pageSize;
  }

  /** The most runs the server lists in one page, so the most the sidebar shows. */
  get maxLimit(): number {
    return this._maxLimit;
  }

  /** False when the server says the runs folder does not exist (yet). */
  get runsDirExists(): boolean {
    return this._runsDirExists;
  }

  get selected(): string | null {
    return this._selected;
  }

  set selected(id: string | null) {
    this._selected = id;
    this._changed.emit();
  }

  /** Show another page of older runs, up to the server's largest page. */
  showMore(): Promise<void> {
    this._limit = Math.min(this._limit + this._pageSize, this._maxLimit);
    return this.refresh();
  }

  protected async load(): Promise<void> {
    let page: IRunsPage;
    try {
      page = await this.api.listRuns(0, this._limit);
    } catch (error) {
      // a server whose largest page is smaller than the one asked for: learn its limit, ask again
      if (!(error instanceof WorkbenchAPIError && error.status === 400)) {
        throw error;
      }
      const info = await this.api.info();
      if (typeof info.max_limit !== 'number' || info.max_limit >= this._limit) {
        throw error;
      }
      this._setMaxLimit(info.max_limit);
      page = await this.api.listRuns(0, this._limit);
    }
    if (typeof page.max_limit === 'number') {
      this._setMaxLimit(page.max_limit);
    }
    this._runs = page.runs;
    this._total = page.total;
    this._counts = page.counts ?? {};
    this._runsDirExists = page.runs_dir_exists ?? true;
    this._loaded = true;
  }

  private _setMaxLimit(max: number): void {
    this._maxLimit = Math.max(1, max);
    this._limit = Math.min(this._limit, this._maxLimit);
  }

  private _runs: IRunSummary[] = [];
  private _total = 0;
  private _counts: Record<string, number> = {};
  private _loaded = false;
  private _runsDirExists = true;
  private _maxLimit = DEFAULT_MAX_LIMIT;
  private _limit: number;
  private readonly _pageSize: number;
  private _selected: string | null = null;
}

/** Metrics replies (of up to 1 MiB each) read in one load of a run's detail. */
export const MAX_CHUNKS_PER_LOAD = 50;

/** One run: its details and its curves, read incrementally from metrics.jsonl. */
export class RunDetailModel extends PollingModel {
  constructor(
    readonly api: IWorkbenchAPI,
    readonly id: string,
    options: IPollOptions = {}
  ) {
    super(options);
  }

  get detail(): IRunDetail | null {
    return this._detail;
  }

  get run(): IRunSummary | null {
    return this._detail?.run ?? null;
  }

  get series(): RunSeries {
    return this._series;
  }

  get offset(): number {
    return this._offset;
  }

  /** Ask the server to stop this run; the next poll shows the outcome. */
  async stop(): Promise<void> {
    await this.api.stopRun(this.id);
    this._stopRequested = true;
    this._changed.emit();
  }

  get stopRequested(): boolean {
    return this._stopRequested;
  }

  /** True once the server no longer has the run (deleted or moved): polling stops. */
  get gone(): boolean {
    return this._gone;
  }

  protected async load(): Promise<void> {
    try {
      await this._load();
      this._gone = false;
    } catch (error) {
      if (!(error instanceof WorkbenchAPIError && error.status === 404)) {
        throw error;
      }
      this._gone = true;
      this._stopRequested = false;
      this.stopPolling();
    }
  }

  /** Why the run's curves could not be read (its metrics.jsonl), while the rest of it could. */
  get metricsError(): string | null {
    return this._metricsError;
  }

  private async _load(): Promise<void> {
    const detail = await this.api.getRun(this.id);
    this._detail = detail; // shown even when the curves cannot be read
    // up to MAX_CHUNKS_PER_LOAD replies per load, so a long file is drawn as it arrives; what is
    // left is read at the next poll, which goes on, even for a finished run, until nothing is
    let caughtUp = false;
    try {
      for (let i = 0; i < MAX_CHUNKS_PER_LOAD; i++) {
        const chunk = await this.api.getMetrics(this.id, this._offset);
        if (chunk.reset) {
          this._series.clear();
        }
        this._series.add(chunk.records);
        const advanced = chunk.offset !== this._offset || chunk.reset;
        this._offset = chunk.offset;
        // `more` is the server's word that a size cap cut the reply short; a reply that moved
        // nothing (an older server counting a half-written last line as more) is not asked again
        if (!chunk.more || !advanced) {
          caughtUp = true;
          break;
        }
      }
      this._metricsError = null;
    } catch (error) {
      if (error instanceof WorkbenchAPIError && error.status === 404) {
        throw error; // the run itself is gone
      }
      this._metricsError = error instanceof Error ? error.message : String(error);
      caughtUp = true; // asked again by hand, not by polling
    }
    this._caughtUp = caughtUp;
    if (!isActive(detail.run.status) && caughtUp) {
      this._stopRequested = false;
      this.stopPolling(); // finished runs do not change; the view can still refresh by hand
    }
  }

  /** False while metrics.jsonl has more complete records than the loads so far have read. */
  get caughtUp(): boolean {
    return this._caughtUp;
  }

  private _detail: IRunDetail | null = null;
  private _caughtUp = false;
  private _metricsError: string | null = null;
  private readonly _series = new RunSeries();
  private _offset = 0;
  private _stopRequested = false;
  private _gone = false;
}
