# The heapscape demo service (heapscape-demo: serve, load, compare), built from this workspace.
# docker-compose.yml runs it as the pooled, unpooled and StatsD-path services and as the load
# generator.

FROM rust:1.88-bookworm AS build
WORKDIR /src
COPY . .
# jemalloc (tikv-jemallocator) builds from source with the image's C toolchain. The cache
# mounts keep the registry and target dir between builds; the binary is copied out of them.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p heapscape-demo --bin heapscape-demo \
    && install -D target/release/heapscape-demo /out/heapscape-demo

FROM debian:bookworm-slim
COPY --from=build /out/heapscape-demo /usr/local/bin/heapscape-demo
USER 65534:65534
EXPOSE 8080 9000
ENTRYPOINT ["/usr/local/bin/heapscape-demo"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
