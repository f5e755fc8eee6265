# syntax=docker/dockerfile:1
# todo-backend: the chat HTTP service. Build from the repository root:
#   docker build -f docker/backend.Dockerfile -t todo-backend .
#
# A static (musl) binary on an empty base: the runtime image holds the binary, the CA
# certificates and nothing else, and runs as an unprivileged numeric user.

FROM rust:1.95.0-alpine3.23 AS build
# ring and the bundled SQLite are C: they need the musl C headers. Package versions follow
# the pinned Alpine release.
# hadolint ignore=DL3018
RUN apk add --no-cache musl-dev ca-certificates
WORKDIR /src

# Dependencies first: this layer is rebuilt only when a manifest or the lock file changes.
COPY Cargo.toml Cargo.lock ./
COPY core/Cargo.toml core/build.rs core/
COPY service/Cargo.toml service/
COPY mcp-server/Cargo.toml mcp-server/
COPY backend/Cargo.toml backend/
COPY tests/Cargo.toml tests/
COPY bench/Cargo.toml bench/
RUN mkdir -p core/src service/src mcp-server/src backend/src bench/src \
 && for d in mcp-server/src backend/src bench/src; do echo 'fn main() {}' > "$d/main.rs"; done \
 && touch core/src/lib.rs service/src/lib.rs mcp-server/src/lib.rs backend/src/lib.rs tests/lib.rs \
 && echo 'fn main() {}' > tests/mock_llm.rs \
 && cargo build --release --locked -p todo-backend

# Then the sources (touched so cargo sees them as newer than the stubs).
COPY AGENT_PROMPT.md ./
COPY migrations migrations
COPY core/src core/src
COPY service/src service/src
COPY mcp-server/src mcp-server/src
COPY backend/src backend/src
RUN touch core/src/lib.rs service/src/lib.rs mcp-server/src/lib.rs mcp-server/src/main.rs backend/src/lib.rs backend/src/main.rs \
 && cargo build --release --locked -p todo-backend \
 && cp target/release/todo-backend /todo-backend

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /todo-backend /todo-backend
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    LOG_FORMAT=json
# A numeric user, so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 8000
ENTRYPOINT ["/todo-backend"]
CMD ["serve", "--bind", "0.0.0.0:8000"]
