# One image for every cosell binary: `cosell` (all services in one process, and `cosell health`,
# the containers' health check) and the per-service binaries (`cosell-identity`, ...), so that
# docker-compose runs one service per container, all from this one image.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p cosell -p cosell-identity -p cosell-directory -p cosell-deals -p cosell-migration

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/cosell /src/target/release/cosell-identity /src/target/release/cosell-directory /src/target/release/cosell-deals /src/target/release/cosell-migration /usr/local/bin/
USER 65534
EXPOSE 50051
ENTRYPOINT ["cosell"]
CMD ["serve", "--listen", "0.0.0.0:50051", "--data-dir", "/tmp/cosell"]
