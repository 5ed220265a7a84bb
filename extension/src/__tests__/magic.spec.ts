import { cellMimeType, isFinetuneCell, YAML_MIME } from '../magic';

describe('%%finetune detection', () => {
  it.each([
    ['%%finetune\ntask: text-classification\n', true],
    ['%%finetune --name demo\nmodel: minilm', true],
    ['%%finetune', true],
    ['%%finetune\r\ntrain:\n  epochs: 1', true],
    ['%%finetune_runs\n', false],
    ['%%finetuned\n', false],
    ['%finetune\n', false],
    [' %%finetune\n', false],
    ['# %%finetune\n', false],
    ['print("%%finetune")', false],
    ['', false]
  ])('%j -> %s', (source, expected) => {
    expect(isFinetuneCell(source)).toBe(expected);
  });

  it('chooses YAML for magic cells and the notebook mimetype otherwise', () => {
    expect(cellMimeType('%%finetune\nmodel: minilm', 'text/x-ipython')).toBe(YAML_MIME);
    expect(cellMimeType('x = 1', 'text/x-ipython')).toBe('text/x-ipython');
  });
});
