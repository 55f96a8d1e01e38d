# Ferry: one image for the controller and the node handler.
#   docker build -t ferry:0.1.0 .
#   docker run --rm ferry:0.1.0 --help
# The TypeScript sources run through tsx (a runtime dependency in package.json),
# so there is no build step and dev dependencies stay out of the image.
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# No install scripts: esbuild (under tsx) ships its binary as a per-platform optional package.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY statecharts ./statecharts
COPY src ./src
# The NATS credential generator: docker run --rm --entrypoint node ferry:0.1.0 --import tsx scripts/gen-nats-auth.ts --nodes a,b
COPY scripts/gen-nats-auth.ts ./scripts/
COPY scripts/lib ./scripts/lib
# Any non-root uid works (files are root-owned and world-readable); tsx writes its cache under /tmp.
USER 10001:10001
ENTRYPOINT ["node", "bin/ferry.js"]
CMD ["--help"]
