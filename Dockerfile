# Ferry: one image for the controller and the node handler.
#   docker build -t ferry:0.1.0 .
#   docker run --rm ferry:0.1.0 --help
# The build stage bundles the TypeScript sources and every npm dependency into
# dist/ (scripts/build.mjs); the image holds that bundle and no node_modules.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No install scripts: esbuild ships its binary as a per-platform optional package.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY scripts ./scripts
COPY statecharts ./statecharts
COPY src ./src
COPY console ./console
RUN node scripts/build.mjs

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json ./
COPY bin ./bin
COPY --from=build /app/dist ./dist
# The NATS credential generator: docker run --rm --entrypoint node ferry:0.1.0 dist/cli/gen-nats-auth.js --nodes a,b
# Any non-root uid works (files are root-owned and world-readable).
USER 10001:10001
ENTRYPOINT ["node", "bin/ferry.js"]
CMD ["--help"]
