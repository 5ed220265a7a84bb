/**
 * Typed client for the workbench server routes (`<base_url>/workbench/api/...`).
 *
 * Every request goes through `ServerConnection.makeRequest`, which adds the token or the
 * XSRF header the server expects; errors surface as `WorkbenchAPIError` with the server's message.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export type RunStatus =
  | 'pending'
  | 'running'
  | 'completed'
  | 'failed'
  | 'interrupted'
  | 'unknown';

export interface IProgress {
  step?: number;
  total_steps?: number;
  epoch?: number;
}

export interface IRunSummary {
  id: string;
  name?: string;
  task?: string;
  model?: string;
  status: RunStatus;
  created_at?: string;
  started_at?: string;
  finished_at?: string;
  updated_at?: string;
  error?: string | null;
  /** The run this one continues (train.resume_from): its id, and the checkpoint's step. */
  resumed_from?: { run: string; checkpoint?: string; step?: number | null } | null;
  /** What is wrong with eval.json, when its figures could not be read. */
  eval_error?: string | null;
  main_metric?: string | null;
  value?: number | null;
  baseline?: number | null;
  /** Whether a higher main metric is better (eval.json's word, else by the metric's name). */
  greater_is_better?: boolean | null;
  progress?: IProgress;
  lab_path?: string | null;
  has_report?: boolean;
  notebook?: string | null;
  loss_sparkline?: number[];
  /** For a run without test metrics: its latest validation value of the main metric. */
  validation?: { value: number; step?: number | null } | null;
}

export interface IRunsPage {
  runs: IRunSummary[];
  total: number;
  offset: number;
  limit: number;
  counts: Record<string, number>;
  /** The largest `limit` the server accepts. */
  max_limit?: number;
  runs_dir_exists?: boolean;
}

export interface IEval {
  main_metric?: string;
  split?: string;
  finetuned?: Record<string, unknown>;
  baseline?: Record<string, unknown>;
  delta?: Record<string, unknown>;
  greater_is_better?: boolean;
}

export interface IRunDetail {
  run: IRunSummary;
  info: Record<string, unknown> | null;
  config: string;
  eval: IEval | null;
  /** For each metric of `eval`, whether a higher value is better. */
  greater_is_better?: Record<string, boolean>;
}

export interface IMetricRecord {
  event: string;
  step?: number;
  loss?: number | null;
  learning_rate?: number | null;
  split?: string;
  metrics?: Record<string, number | null>;
  [key: string]: unknown;
}

export interface IMetricsChunk {
  records: IMetricRecord[];
  offset: number;
  size: number;
  more: boolean;
  reset: boolean;
}

export interface ITemplateParameter {
  name: string;
  default: string | null;
  help: string;
}

export interface ITemplate {
  name: string;
  title: string;
  description: string;
  parameters: ITemplateParameter[];
  error?: string;
}

export interface IInfo {
  version: string;
  /** The runs folder relative to the Jupyter root; null where it lies outside the root. */
  runs_dir: string | null;
  runs_dir_outside_root?: boolean;
  runs_dir_exists: boolean;
  max_limit?: number;
}

/** What the views need from the server; the sidebar and detail models take any implementation. */
export interface IWorkbenchAPI {
  info(): Promise<IInfo>;
  listRuns(offset?: number, limit?: number): Promise<IRunsPage>;
  getRun(id: string): Promise<IRunDetail>;
  getMetrics(id: string, offset: number): Promise<IMetricsChunk>;
  stopRun(id: string): Promise<void>;
  listTemplates(): Promise<ITemplate[]>;
  createNotebook(
    template: string,
    path: string,
    parameters?: Record<string, unknown>
  ): Promise<{ path: string }>;
  reportUrl(id: string): string;
}

export class WorkbenchAPIError extends Error {
  constructor(
    message: string,
    readonly status: number
  ) {
    super(message);
  }
}

export class WorkbenchAPI implements IWorkbenchAPI {
  constructor(
    readonly serverSettings: ServerConnection.ISettings = ServerConnection.makeSettings()
  ) {}

  private url(...parts: string[]): string {
    return URLExt.join(
      this.serverSettings.baseUrl,
      'workbench',
      'api',
      ...parts.map(encodeURIComponent)
    );
  }

  /**
   * One JSON request. With `revalidate`, a GET sends the ETag of the last answer to the same URL
   * and a 304 (nothing changed) gives that answer again without downloading it.
   */
  private async request<T>(
    parts: string[],
    init: RequestInit = {},
    query: Record<string, string | number> = {},
    revalidate = false
  ): Promise<T> {
    const params = Object.entries(query)
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
      .join('&');
    const url = this.url(...parts) + (params ? `?${params}` : '');
    const cached = revalidate ? this._lastAnswers.get(url) : undefined;
    if (cached) {
      init = { ...init, headers: { 'If-None-Match': cached.etag } };
    }
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(
        url,
        init,
        this.serverSettings
      );
    } catch (error) {
      throw new WorkbenchAPIError(`cannot reach the server: ${error}`, 0);
    }
    if (cached && response.status === 304) {
      return cached.data as T;
    }
    const text = await response.text();
    let data: any = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!response.ok) {
      this._lastAnswers.delete(url);
      const message =
        (data && typeof data.message === 'string' && data.message) ||
        response.statusText ||
        `HTTP ${response.status}`;
      throw new WorkbenchAPIError(message, response.status);
    }
    if (revalidate) {
      const etag = response.headers.get('ETag');
      if (etag) {
        this._lastAnswers.set(url, { etag, data });
      } else {
        this._lastAnswers.delete(url);
      }
    }
    return data as T;
  }

  info(): Promise<IInfo> {
    return this.request<IInfo>(['info']);
  }

  listRuns(offset = 0, limit = 100): Promise<IRunsPage> {
    return this.request<IRunsPage>(['runs'], {}, { offset, limit }, true);
  }

  getRun(id: string): Promise<IRunDetail> {
    return this.request<IRunDetail>(['runs', id], {}, {}, true);
  }

  getMetrics(id: string, offset: number): Promise<IMetricsChunk> {
    return this.request<IMetricsChunk>(['runs', id, 'metrics'], {}, { offset });
  }

  async stopRun(id: string): Promise<void> {
    await this.request(['runs', id, 'stop'], { method: 'POST' });
  }

  async listTemplates(): Promise<ITemplate[]> {
    const data = await this.request<{ templates: ITemplate[] }>(['templates']);
    return data.templates;
  }

  createNotebook(
    template: string,
    path: string,
    parameters?: Record<string, unknown>
  ): Promise<{ path: string }> {
    return this.request<{ path: string }>(['notebooks'], {
      method: 'POST',
      body: JSON.stringify({ template, path, parameters })
    });
  }

  reportUrl(id: string): string {
    return this.url('runs', id, 'report');
  }

  private readonly _lastAnswers = new Map<string, { etag: string; data: unknown }>();
}
