/**
 * workbench-lab: the "Fine-tuning runs" sidebar, a detail tab per run, launcher cards and
 * palette entries that create notebooks from the workbench templates, and `%%finetune` highlighting.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  Clipboard,
  ICommandPalette,
  MainAreaWidget,
  Notification,
  showDialog,
  showErrorMessage,
  Dialog,
  WidgetTracker
} from '@jupyterlab/apputils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { ILauncher } from '@jupyterlab/launcher';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IFrame } from '@jupyterlab/ui-components';

import { ITemplate, WorkbenchAPI } from './api';
import { displayName, runsFolderLabel, toFinetuneCell } from './format';
import { finetuneIcon } from './icons';
import { highlightFinetuneCells } from './magic';
import { RunDetailModel, RunsListModel } from './model';
import { RunDetailWidget, RunsSidebar } from './widgets';

export namespace CommandIDs {
  export const showRuns = 'workbench:show-runs';
  export const openRun = 'workbench:open-run';
  export const newNotebook = 'workbench:new-notebook';
  export const refreshRuns = 'workbench:refresh-runs';
}

const CATEGORY = 'Fine-tuning';

function runsPlugin(
  app: JupyterFrontEnd,
  palette: ICommandPalette | null,
  restorer: ILayoutRestorer | null
): void {
  const api = new WorkbenchAPI(app.serviceManager.serverSettings);
  const listModel = new RunsListModel(api, { visible: false }); // polls once the sidebar is shown
  let runsDir = 'runs/';
  api
    .info()
    .then(info => {
      runsDir = runsFolderLabel(info);
      if (listModel.visible) {
        void listModel.refresh();
      }
    })
    .catch(() => undefined);

  const tracker = new WidgetTracker<MainAreaWidget<RunDetailWidget>>({ namespace: 'workbench-run' });

  const openReport = (m: RunDetailModel) => {
    const run = m.run;
    if (!run) {
      return;
    }
    const id = `workbench-report-${run.id}`;
    for (const open of app.shell.widgets('main')) {
      if (open.id === id) {
        app.shell.activateById(id); // one tab per report
        return;
      }
    }
    const frame = new IFrame({ sandbox: ['allow-scripts'], referrerPolicy: 'same-origin' });
    frame.url = api.reportUrl(run.id);
    const widget = new MainAreaWidget({ content: frame });
    widget.id = id;
    widget.title.label = `Report: ${displayName(run)}`;
    widget.title.icon = finetuneIcon;
    widget.title.closable = true;
    app.shell.add(widget, 'main');
  };

  const actions = {
    openReport,
    openNotebook: (m: RunDetailModel) => {
      const path = m.run?.notebook;
      if (path) {
        void app.commands.execute('docmanager:open', { path });
      }
    },
    stop: async (m: RunDetailModel) => {
      const result = await showDialog({
        title: 'Stop this run?',
        body: `${displayName(m.run!)} stops at its next step check and keeps a resumable checkpoint.`,
        buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Stop run' })],
        defaultButton: 0 // Enter keeps the run going; stopping is a deliberate choice
      });
      if (!result.button.accept) {
        return;
      }
      try {
        await m.stop();
        Notification.info(`Stop requested for ${displayName(m.run!)}.`, { autoClose: 4000 });
        void listModel.refresh();
      } catch (error) {
        void showErrorMessage('Cannot stop the run', String((error as Error).message ?? error));
      }
    },
    copyConfig: (m: RunDetailModel) => {
      if (m.detail?.config) {
        Clipboard.copyToSystem(toFinetuneCell(m.detail.config));
        Notification.success('Copied the config as a %%finetune cell.', { autoClose: 3000 });
      }
    }
  };

  const openRun = (id: string) => {
    const existing = tracker.find(w => w.content.model.id === id);
    if (existing) {
      app.shell.activateById(existing.id);
      return existing;
    }
    const content = new RunDetailWidget(new RunDetailModel(api, id), actions);
    const widget = new MainAreaWidget({ content });
    widget.id = `workbench-run-${id}`;
    widget.title.label = `Run: ${id}`;
    widget.title.icon = finetuneIcon;
    widget.title.closable = true;
    content.model.changed.connect(() => {
      widget.title.label = content.title.label;
      widget.title.caption = content.title.caption;
    });
    // a tab restored behind another is not shown, so its model does not load: its name comes from here
    void api
      .getRun(id)
      .then(detail => {
        if (!content.model.run && !widget.isDisposed) {
          widget.title.label = `Run: ${detail.run.name || detail.run.id}`;
          widget.title.caption = `${detail.run.id} (${detail.run.status})`;
        }
      })
      .catch(() => undefined);
    void tracker.add(widget);
    app.shell.add(widget, 'main');
    app.shell.activateById(widget.id);
    return widget;
  };

  const sidebar = new RunsSidebar(listModel, { runsDir: () => runsDir, onSelect: id => openRun(id) });
  sidebar.id = 'workbench-runs';
  sidebar.title.icon = finetuneIcon;
  sidebar.title.caption = 'Fine-tuning runs';
  app.shell.add(sidebar, 'left', { rank: 650 });
  if (restorer) {
    restorer.add(sidebar, 'workbench-runs');
    void restorer.restore(tracker, {
      command: CommandIDs.openRun,
      args: w => ({ id: w.content.model.id }),
      name: w => w.content.model.id
    });
  }

  app.commands.addCommand(CommandIDs.showRuns, {
    label: 'Show Fine-tuning Runs',
    execute: () => app.shell.activateById(sidebar.id)
  });
  app.commands.addCommand(CommandIDs.refreshRuns, {
    label: 'Refresh Fine-tuning Runs',
    execute: () => listModel.refresh()
  });
  app.commands.addCommand(CommandIDs.openRun, {
    label: args => `Open Fine-tuning Run ${args.id ?? ''}`,
    execute: args => openRun(String(args.id))
  });
  if (palette) {
    palette.addItem({ command: CommandIDs.showRuns, category: CATEGORY });
    palette.addItem({ command: CommandIDs.refreshRuns, category: CATEGORY });
  }
}

const runs: JupyterFrontEndPlugin<void> = {
  id: 'workbench-lab:runs',
  description: 'The Fine-tuning runs sidebar and run detail tabs.',
  autoStart: true,
  optional: [ICommandPalette, ILayoutRestorer],
  activate: runsPlugin
};

const templates: JupyterFrontEndPlugin<void> = {
  id: 'workbench-lab:templates',
  description: 'Launcher cards and palette entries that create a notebook from a workbench template.',
  autoStart: true,
  optional: [ILauncher, ICommandPalette, IDefaultFileBrowser],
  activate: async (
    app: JupyterFrontEnd,
    launcher: ILauncher | null,
    palette: ICommandPalette | null,
    browser: IDefaultFileBrowser | null
  ) => {
    const api = new WorkbenchAPI(app.serviceManager.serverSettings);
    const byName = new Map<string, ITemplate>();
    app.commands.addCommand(CommandIDs.newNotebook, {
      label: args => {
        const title = byName.get(String(args.template))?.title ?? String(args.template ?? '');
        return args.isLauncher ? title : `New fine-tuning notebook: ${title}`;
      },
      caption: args => byName.get(String(args.template))?.description ?? '',
      icon: args => (args.isPalette ? undefined : finetuneIcon),
      execute: async args => {
        const cwd = typeof args.cwd === 'string' ? args.cwd : browser?.model.path ?? '';
        try {
          const created = await api.createNotebook(String(args.template), cwd);
          return app.commands.execute('docmanager:open', { path: created.path, factory: 'Notebook' });
        } catch (error) {
          void showErrorMessage('Cannot create the notebook', String((error as Error).message ?? error));
        }
      }
    });
    let list: ITemplate[] = [];
    try {
      list = await api.listTemplates();
    } catch (error) {
      console.warn('workbench-lab: templates unavailable', error);
      return;
    }
    list.forEach((t, rank) => {
      if (t.error) {
        return;
      }
      byName.set(t.name, t);
      launcher?.add({
        command: CommandIDs.newNotebook,
        args: { template: t.name, isLauncher: true },
        category: CATEGORY,
        rank
      });
      palette?.addItem({
        command: CommandIDs.newNotebook,
        args: { template: t.name, isPalette: true },
        category: CATEGORY,
        rank
      });
    });
  }
};

const highlighting: JupyterFrontEndPlugin<void> = {
  id: 'workbench-lab:finetune-highlighting',
  description: 'Shows %%finetune cells with YAML highlighting.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker) => highlightFinetuneCells(tracker)
};

export default [runs, templates, highlighting];
