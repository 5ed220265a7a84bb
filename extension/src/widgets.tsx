/**
 * Lumino widgets around the React views: the sidebar panel and a run's detail tab.
 * They tell their model when they are shown or hidden, so hidden views do not poll.
 */
import { ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import * as React from 'react';

import { RunDetailView, RunsList } from './components';
import { RunDetailModel, RunsListModel } from './model';

/** A view that owns a polling model: it polls only while shown, and ends with the view. */
abstract class PollingView<M extends RunsListModel | RunDetailModel> extends ReactWidget {
  constructor(readonly model: M) {
    super();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.model.setVisible(true);
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this.model.setVisible(false);
  }

  dispose(): void {
    this.model.dispose();
    super.dispose();
  }
}

export class RunsSidebar extends PollingView<RunsListModel> {
  constructor(
    model: RunsListModel,
    private readonly _options: { runsDir: () => string; onSelect: (id: string) => void }
  ) {
    super(model);
    this.addClass('jp-wb-sidebar');
  }

  render(): JSX.Element {
    return (
      <UseSignal signal={this.model.changed}>
        {() => (
          <RunsList
            runs={this.model.runs}
            total={this.model.total}
            loaded={this.model.loaded}
            error={this.model.error}
            runsDir={this._options.runsDir()}
            runsDirExists={this.model.runsDirExists}
            pageSize={this.model.pageSize}
            maxRuns={this.model.maxLimit}
            selected={this.model.selected}
            onSelect={id => {
              this.model.selected = id;
              this._options.onSelect(id);
            }}
            onRefresh={() => void this.model.refresh()}
            onShowMore={() => void this.model.showMore()}
          />
        )}
      </UseSignal>
    );
  }
}

export interface IRunActions {
  openReport: (model: RunDetailModel) => void;
  openNotebook: (model: RunDetailModel) => void;
  stop: (model: RunDetailModel) => void;
  copyConfig: (model: RunDetailModel) => void;
}

export class RunDetailWidget extends PollingView<RunDetailModel> {
  constructor(
    model: RunDetailModel,
    private readonly _actions: IRunActions
  ) {
    super(model);
    this.addClass('jp-wb-detail-widget');
    model.changed.connect(this._updateTitle, this);
  }

  private _updateTitle(): void {
    const run = this.model.run;
    if (run) {
      this.title.label = `Run: ${run.name || run.id}`;
    }
    if (this.model.gone) {
      this.title.caption = `${this.model.id} (no longer exists)`;
    } else if (run) {
      this.title.caption = `${run.id} (${run.status})`;
    }
  }

  render(): JSX.Element {
    const m = this.model;
    return (
      <UseSignal signal={m.changed}>
        {() => (
          <RunDetailView
            detail={m.detail}
            series={m.series}
            error={m.error}
            metricsError={m.metricsError}
            stopRequested={m.stopRequested}
            gone={m.gone}
            onOpenReport={() => this._actions.openReport(m)}
            onOpenNotebook={() => this._actions.openNotebook(m)}
            onStop={() => this._actions.stop(m)}
            onCopyConfig={() => this._actions.copyConfig(m)}
            onRefresh={() => void m.refresh()}
          />
        )}
      </UseSignal>
    );
  }
}
