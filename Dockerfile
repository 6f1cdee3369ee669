# syntax=docker/dockerfile:1
# taskstats-agent image: Node.js 26 (LTS) on Debian 12 (bookworm) slim, the libnl runtime libraries the
# taskstats receiver loads through koffi, production dependencies from package-lock.json, and the
# compiled JavaScript only. Build from the repository root:
#   docker build -t taskstats-agent:0.1.0 .
# Run (outside Kubernetes) with the kernel namespaces and the one capability it needs:
#   docker run --pid=host --network=host --cap-drop=ALL --cap-add=NET_ADMIN --read-only --tmpfs /tmp \
#     -v $PWD/config.yaml:/etc/taskstats-agent/config.yaml:ro taskstats-agent:0.1.0
# The base is pinned by digest (docs/deploy.md, "Node.js runtime": why 26, and how to move it:
# `docker buildx imagetools inspect node:26-bookworm-slim`, then replace the digest here).
ARG NODE_IMAGE=node:26-bookworm-slim@sha256:2d49d876e96237d76de412761cf05dbfe5aee325cc4406a4d41d5824c5bb8beb

# ---- build: every dependency (dev included) and tsc ----
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY plugins ./plugins
RUN npm run build

# ---- deps: production dependencies only, exactly as locked ----
# Not --omit=optional: koffi's prebuilt native binary comes through an optional dependency. The
# Node.js binary package (node-linux-<arch>, optional, for clones run outside an image) is removed:
# the image runs the base image's node, which carries the file capability below.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund \
 && rm -rf node_modules/node-linux-* node_modules/.bin/node \
 && npm cache clean --force

# ---- runtime ----
FROM ${NODE_IMAGE} AS runtime
# libnl for the receiver. setcap gives the node binary the file capability cap_net_admin+ep:
# Kubernetes cannot give a non-root process an ambient capability, so this is how uid 10001
# gets the CAP_NET_ADMIN the container is granted (capabilities add: [NET_ADMIN]); it is
# honoured under no_new_privs (allowPrivilegeEscalation: false) because the capability is already
# in the container's permitted set. A container that is NOT granted NET_ADMIN cannot exec node at
# all (EPERM): grant it, or run as root. libcap2-bin is removed again after use.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libnl-3-200 libnl-genl-3-200 libcap2-bin \
 && setcap cap_net_admin+ep /usr/local/bin/node \
 && getcap /usr/local/bin/node \
 && apt-get purge -y libcap2-bin \
 && apt-get autoremove -y \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 taskstats \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin taskstats
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json package-lock.json ./
COPY bin ./bin
COPY config.yaml /etc/taskstats-agent/config.yaml
# Numeric, so that runAsNonRoot can verify it.
USER 10001:10001
# With hostPID the agent is not pid 1 of its namespace, so node needs no init process in front.
# node runs the agent directly (a shell in between would drop the file capability under
# no_new_privs), so the flags of bin/node-flags are written out here: V8 memory settings node only
# takes on its command line (docs/deploy.md "Memory"; test/host/v8-flags.test.ts checks that this
# list is bin/node-flags). Not in NODE_OPTIONS: node ignores it when its binary has file
# capabilities (setcap above).
ENTRYPOINT ["/usr/local/bin/node", "--max-semi-space-size=2", "--max-opt=2", "/app/bin/taskstats-agent"]
CMD ["run", "--config", "/etc/taskstats-agent/config.yaml"]
