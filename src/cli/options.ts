import { InvalidArgumentError, Option } from 'commander';

// commander is the CLI parser: subcommands, --help on each, typed option parsing.
// These are the option parsers and options several commands share.
export const int = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
  return n;
};
export const positive = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number`);
  return n;
};

export const kubeconfigOption = () =>
  new Option('--kubeconfig <path>', 'kubeconfig to use (default: $KUBECONFIG, else .ferry/kubeconfig if present, else ~/.kube/config)');

