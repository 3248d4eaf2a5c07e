# socketd-broker container image.
#   docker build -t socketd-broker .
#   docker run --rm -p 8602:8602 -p 8603:8603/udp -p 8604:8604 -p 8680:8680 socketd-broker
# The config is read from /etc/socketd-broker/broker.yaml: mount your own file there
# (-v ./broker.yaml:/etc/socketd-broker/broker.yaml:ro). Flags after the image name replace the CMD.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would build before the sources are copied.
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY scripts ./scripts
# The server, and the browser SDK bundle the example chat page loads (/examples/chat/).
RUN npx tsc -p tsconfig.build.json && node scripts/build-browser.mjs && npm prune --omit=dev --ignore-scripts

FROM node:20-bookworm-slim
# tini as PID 1 forwards SIGTERM/SIGINT to node and reaps children, so graceful shutdown works under
# `docker stop` and Kubernetes.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/dist/browser ./dist/browser
# The admin page (/admin/, docs/operations.md section 6.1), built with the browser bundle.
COPY --from=build /app/dist/admin ./dist/admin
COPY examples/web ./examples/web
COPY package.json ./
COPY bin ./bin
COPY config/broker.yaml /etc/socketd-broker/broker.yaml
USER node
# sd:tcp, sd:udp, sd:ws, http (health, metrics, admin)
EXPOSE 8602/tcp 8603/udp 8604/tcp 8680/tcp
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8680/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--", "node", "bin/socketd-broker.js"]
CMD ["--config", "/etc/socketd-broker/broker.yaml"]
