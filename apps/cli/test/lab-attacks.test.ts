import { describe, expect, it } from 'vitest';
import { parseLabArgs } from '../src/commands/lab';
import { expectOneLineError, tracemark } from './support/cli';

describe('tracemark lab: the distiller who fights back', () => {
  it('reads the scheme, order, pruning and attack options into lab options', () => {
    const { options } = parseLabArgs(
      {
        out: 'x',
        scheme: 'kgw-h2',
        gamma: '0.25',
        delta: '3',
        contextWidth: '3',
        teacherOrder: '4',
        studentOrder: '3',
        prune: '2',
        attack: 'none,paraphrase:0.5,filter:0.3,neutralise:1000',
        rho: '0.01,0.02',
      },
      [],
    );
    expect(options).toMatchObject({
      gamma: 0.25,
      delta: 3,
      contextWidth: 3,
      teacherOrder: 4,
      studentOrder: 3,
      prune: 2,
      attacks: ['none', 'paraphrase:0.5', 'filter:0.3', 'neutralise:1000'],
      rhos: [0.01, 0.02],
    });
  });

  it('lists the new options under --help', () => {
    const help = tracemark(['lab', '--help']).stdout;
    for (const option of [
      '--gamma <g>',
      '--delta <d>',
      '--context-width <h>',
      '--teacher-order <n>',
      '--student-order <n>',
      '--prune <n>',
      '--attack <a,b>',
    ])
      expect(help).toContain(option);
  });

  it('refuses what does not apply in one line, before any work', () => {
    expectOneLineError(
      tracemark(['lab', '--scheme', 'gumbel', '--delta', '3', '--out', 'unused']),
      /--delta does not apply to gumbel/,
    );
    expectOneLineError(tracemark(['lab', '--prune', '1.5', '--out', 'unused']), /--prune must be an integer/);
    expectOneLineError(
      tracemark(['lab', '--attack', 'paraphrase:2', '--out', 'unused']),
      /paraphrase:<s> needs a share s in \(0, 1\)/,
    );
  });
});
