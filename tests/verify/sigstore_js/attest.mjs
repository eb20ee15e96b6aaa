// Sign an in-toto statement and attach it to an image exactly as actions/attest does:
// @sigstore/sign (Fulcio + Rekor "dsse" entry, DSSE bundle) then @sigstore/oci's attachArtifactToImage.
// Input (JSON on stdin): {fulcioURL, rekorURL, token, imageName, imageDigest, statement}.
// Output (JSON on stdout): {bundle, descriptor}.
import { bundleToJSON } from '@sigstore/bundle';
import { attachArtifactToImage } from '@sigstore/oci';
import { DSSEBundleBuilder, FulcioSigner, RekorWitness } from '@sigstore/sign';

const INTOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
const OCI_BUNDLE_MEDIA_TYPE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
const RETRY = { retries: 0 };
const TIMEOUT = 10000;

const readStdin = async () => {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
};

const input = await readStdin();
const signer = new FulcioSigner({
  identityProvider: { getToken: () => Promise.resolve(input.token) },
  fulcioBaseURL: input.fulcioURL,
  timeout: TIMEOUT,
  retry: RETRY,
});
const witnesses = [
  new RekorWitness({
    rekorBaseURL: input.rekorURL,
    entryType: 'dsse',
    fetchOnConflict: true,
    timeout: TIMEOUT,
    retry: RETRY,
  }),
];
const bundler = new DSSEBundleBuilder({ signer, witnesses });
const bundle = bundleToJSON(
  await bundler.create({
    data: Buffer.from(JSON.stringify(input.statement)),
    type: INTOTO_PAYLOAD_TYPE,
  }),
);
// The loopback registry is anonymous: no credentials, so no sign-in probe
// (@sigstore/oci speaks plain http to 127.0.0.1/localhost by itself).
const descriptor = await attachArtifactToImage({
  credentials: undefined,
  imageName: input.imageName,
  imageDigest: input.imageDigest,
  artifact: Buffer.from(JSON.stringify(bundle)),
  mediaType: OCI_BUNDLE_MEDIA_TYPE,
  annotations: {
    'dev.sigstore.bundle.content': 'dsse-envelope',
    'dev.sigstore.bundle.predicateType': input.statement.predicateType,
  },
  fetchOpts: { timeout: TIMEOUT, retry: RETRY },
});
process.stdout.write(JSON.stringify({ bundle, descriptor }));
