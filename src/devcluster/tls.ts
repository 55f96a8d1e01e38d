import { generate } from 'selfsigned';

/** A key and a self-signed certificate for the dev API server, made fresh for each run. */
export interface ServingCert {
  key: string;
  cert: string;
}

/**
 * The dev API server serves HTTPS so that it can require a bearer token:
 * kubectl never sends one over plain HTTP. The certificate names the loopback
 * address (and `host`); the kubeconfig carries it as its CA, so clients verify
 * it rather than skipping verification.
 */
export async function servingCert(host: string): Promise<ServingCert> {
  const altNames: Array<{ type: 2; value: string } | { type: 7; ip: string }> = [
    { type: 2, value: 'localhost' },
    { type: 7, ip: '127.0.0.1' },
  ];
  if (host !== '127.0.0.1' && host !== 'localhost') altNames.push(/^[\d.:]+$/.test(host) ? { type: 7, ip: host } : { type: 2, value: host });
  const now = Date.now();
  const pems = await generate([{ name: 'commonName', value: 'ferry-dev-apiserver' }], {
    keyType: 'ec',
    curve: 'P-256',
    notBeforeDate: new Date(now - 60_000),
    notAfterDate: new Date(now + 30 * 24 * 3600_000),
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'keyUsage', digitalSignature: true, keyCertSign: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames },
    ],
  });
  return { key: pems.private, cert: pems.cert };
}
