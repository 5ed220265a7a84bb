import { LabIcon } from '@jupyterlab/ui-components';

const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M3 19h18v2H3z"/>
    <path d="M4 15.5l4.5-5 3.5 3 6.5-7.5 1.5 1.3-7.8 9-3.5-3-3.2 3.5z"/>
    <circle cx="18.5" cy="6" r="1.8"/>
  </g>
</svg>`;

export const finetuneIcon = new LabIcon({ name: 'workbench-lab:finetune', svgstr: svg });
