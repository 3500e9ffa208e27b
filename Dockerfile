# rexe image: multi-stage build, non-root runtime.
# Build: docker build -t rexe:dev .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin rexe

FROM debian:bookworm-slim
RUN useradd --system --create-home --home-dir /home/rexe --uid 10001 rexe \
 && mkdir -p /data /keys && chown rexe:rexe /data /keys
COPY --from=build /src/target/release/rexe /usr/local/bin/rexe
USER rexe
WORKDIR /home/rexe
VOLUME ["/data"]
EXPOSE 18480
ENTRYPOINT ["rexe"]
CMD ["node", "--datadir", "/data", "--rpc-bind", "0.0.0.0:18480"]
