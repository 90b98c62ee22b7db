# parsec-rs: one image for `parsec server dht`, `parsec scheduler` and `parsec testnet`.
# Build: DOCKER_BUILDKIT=1 docker build --build-arg PARSEC_GIT_COMMIT=$(git rev-parse --short=12 HEAD) -t parsec-rs .
# (from the repository root; compose builds it too). The commit is what `parsec --version` names:
# `.git` is not copied into the image.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
ARG PARSEC_GIT_COMMIT=unknown
# Cache mounts keep the registry and build directory between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin parsec \
    && cp target/release/parsec /usr/local/bin/parsec \
    && strip /usr/local/bin/parsec

FROM debian:bookworm-slim
# No libpq, no libsqlite: Postgres is spoken in Rust, SQLite is compiled in.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --create-home parsec
# Amazon RDS's CA bundle (all regions), for PARSEC_DATABASE_SSL_MODE=verify-full against RDS:
# PARSEC_DATABASE_SSL_ROOT_CERT=/etc/ssl/certs/rds-global-bundle.pem (docs/operations.md, ECS).
ADD --chmod=644 https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem /etc/ssl/certs/rds-global-bundle.pem
COPY --from=build /usr/local/bin/parsec /usr/local/bin/parsec
USER parsec
WORKDIR /data
# HTTP API, libp2p (TCP and QUIC share the port), Prometheus metrics.
EXPOSE 7070 4001/tcp 4001/udp 9464
ENTRYPOINT ["parsec"]
CMD ["server", "dht", "--server-mode"]
