import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bashCompletion, zshCompletion } from '../../src/cli/completion.js';
import { buildProgram } from '../../src/cli/program.js';

/** Runs the generated bash script in a real bash and returns what TAB offers after `words`. */
function complete(script: string, words: string[]): string[] {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-completion-'));
  writeFileSync(path.join(dir, 'c.bash'), script);
  const arr = words.map((w) => `'${w}'`).join(' ');
  const r = spawnSync('bash', ['--norc', '-c', `cd ${dir}; source c.bash; COMP_WORDS=(${arr}); COMP_CWORD=${words.length - 1}; _ferry_complete; printf '%s\\n' "\${COMPREPLY[@]}"`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout.split('\n').filter((l) => l !== '');
}

describe('ferry completion', () => {
  const script = bashCompletion(buildProgram());

  test('bash offers every top-level command, then the subcommands and options of the one typed', () => {
    const top = complete(script, ['ferry', '']);
    for (const c of ['dev', 'status', 'drain', 'uncordon', 'cancel', 'runbook', 'console', 'completion']) expect(top).toContain(c);
    expect(complete(script, ['ferry', 'dr'])).toEqual(['drain']);
    expect(complete(script, ['ferry', 'runbook', ''])).toEqual(expect.arrayContaining(['plan', 'apply', 'status']));
    expect(complete(script, ['ferry', 'status', '--w'])).toEqual(['--watch']);
  });

  test('bash completes option values: choices, and files for --kubeconfig, even after other options', () => {
    expect(complete(script, ['ferry', 'dev', '--nodes', '3', '--driver', ''])).toEqual(['sim', 'libvirt']);
    expect(complete(script, ['ferry', 'completion', ''])).toEqual(expect.arrayContaining(['bash', 'zsh']));
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-completion-'));
    writeFileSync(path.join(dir, 'kubeconfig-a'), '');
    expect(complete(script, ['ferry', 'status', '--kubeconfig', path.join(dir, 'kube')])).toEqual([path.join(dir, 'kubeconfig-a')]);
    // The value of --kubeconfig is not taken for a command name.
    expect(complete(script, ['ferry', 'drain', '--kubeconfig', 'status', '--dry'])).toEqual(['--dry-run']);
  });

  test('zsh offers commands with descriptions, options after a dash and choices for a value', () => {
    const zsh = zshCompletion(buildProgram());
    expect(zsh).toMatch(/^#compdef ferry kubectl-ferry/);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-completion-'));
    writeFileSync(path.join(dir, '_ferry'), zsh);
    // The completion widgets (_describe, compadd) need zle; these stand-ins print what they were given.
    const zcomplete = (words: string[]) => {
      const r = spawnSync('zsh', ['-f', '-c', [
        'compdef() { : }',
        '_describe() { local -a a; a=("${(@P)${@[-1]}}"); print -rl -- "${a[@]}" }',
        'compadd() { shift; print -rl -- "$@" }',
        `source ${dir}/_ferry`,
        `words=(${words.map((w) => `'${w}'`).join(' ')}); CURRENT=${words.length}`,
        '_ferry',
      ].join('\n')], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(r.stderr);
      return r.stdout.split('\n').filter((l) => l !== '');
    };
    expect(zcomplete(['ferry', ''])).toEqual(expect.arrayContaining([expect.stringMatching(/^drain:Cordon NODE/), expect.stringMatching(/^runbook:/)]));
    expect(zcomplete(['ferry', 'runbook', 'apply', '--'])).toEqual(expect.arrayContaining([expect.stringMatching(/^--no-wait:/), expect.stringMatching(/^--kubeconfig:/)]));
    expect(zcomplete(['ferry', 'dev', '--driver', ''])).toEqual(['sim', 'libvirt']);
  });
});
