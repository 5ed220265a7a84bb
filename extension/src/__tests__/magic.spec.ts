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
    ['', false],
    ['\n%%finetune\nmodel: minilm', true],
    ['  \n\t\n%%finetune --name demo\n', true],
    ['\r\n%%finetune\r\nmodel: minilm', true],
    ['\n\n%%finetune', true],
    ['\n %%finetune\n', false],
    ['\nx = 1\n%%finetune\n', false],
    ['\n%%finetuned\n', false],
    ['\n\n', false]
  ])('%j -> %s', (source, expected) => {
    expect(isFinetuneCell(source)).toBe(expected);
  });

  it('chooses YAML for magic cells and the notebook mimetype otherwise', () => {
    expect(cellMimeType('%%finetune\nmodel: minilm', 'text/x-ipython')).toBe(YAML_MIME);
    expect(cellMimeType('x = 1', 'text/x-ipython')).toBe('text/x-ipython');
  });

  it('treats a magic after blank lines as the magic, as IPython runs it', () => {
    // a fresh cell where Enter was pressed before typing the magic
    expect(cellMimeType('\n%%finetune\nmodel: minilm\n', 'text/x-ipython')).toBe(YAML_MIME);
    expect(cellMimeType('   \n%%finetune\nmodel: minilm\n', 'text/x-ipython')).toBe(YAML_MIME);
  });
});
