/**
 * `%%finetune` cells are YAML after the magic line: show them with the YAML mode.
 *
 * The notebook sets every code cell's mimetype from the kernel language; a watched cell whose
 * source starts with `%%finetune` (after any blank lines) is switched to YAML (and back when the
 * line goes away).
 */
import { ICellModel } from '@jupyterlab/cells';
import { INotebookTracker, Notebook } from '@jupyterlab/notebook';
import { IObservableList } from '@jupyterlab/observables';

export const YAML_MIME = 'text/x-yaml';

/**
 * True when `source` is a `%%finetune` cell. The magic must open the cell, as IPython requires, but
 * IPython first drops leading lines that are empty or hold only whitespace (a fresh cell often
 * starts with an Enter), so those may come before it. An indented magic line is no cell magic.
 */
export function isFinetuneCell(source: string): boolean {
  return /^(?:[^\S\r\n]*\r?\n)*%%finetune(?=[ \t]|\r?\n|$)/.test(source);
}

/** The mimetype a code cell should have: YAML for `%%finetune` cells, else the notebook's. */
export function cellMimeType(source: string, notebookMime: string): string {
  return isFinetuneCell(source) ? YAML_MIME : notebookMime;
}

function watchNotebook(notebook: Notebook): void {
  const watched = new WeakSet<ICellModel>();
  const apply = (cell: ICellModel) => {
    const want = cellMimeType(cell.sharedModel.getSource(), notebook.codeMimetype);
    if (cell.mimeType !== want) {
      cell.mimeType = want;
    }
  };
  const watch = (cell: ICellModel) => {
    if (cell.type !== 'code' || watched.has(cell)) {
      return;
    }
    watched.add(cell);
    cell.contentChanged.connect(() => apply(cell));
    cell.mimeTypeChanged.connect(() => apply(cell));
    apply(cell);
  };
  const onCells = (_: unknown, change: IObservableList.IChangedArgs<ICellModel>) => {
    change.newValues.forEach(watch);
  };
  const attach = () => {
    const model = notebook.model;
    if (!model) {
      return;
    }
    for (let i = 0; i < model.cells.length; i++) {
      watch(model.cells.get(i));
    }
    model.cells.changed.connect(onCells);
  };
  notebook.modelChanged.connect(attach);
  attach();
}

export function highlightFinetuneCells(tracker: INotebookTracker): void {
  tracker.forEach(panel => watchNotebook(panel.content));
  tracker.widgetAdded.connect((_, panel) => watchNotebook(panel.content));
}
