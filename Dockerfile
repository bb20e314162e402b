# The heapscape demo service (heapscape-demo: serve, load, compare), built from this workspace.
# docker-compose.yml runs it as the pooled, unpooled and StatsD-path services and as the load
# generator.
#
# Plain Dockerfile instructions only (no cache mounts, no heredocs), so the classic builder
# builds it as well as BuildKit. Both images are pinned: the Rust toolchain to a release, the
# runtime to a dated Debian snapshot.

FROM rust:1.88.0-bookworm AS build
WORKDIR /src
COPY . .
# jemalloc (tikv-jemallocator) builds from source with the image's C toolchain.
RUN cargo build --release --locked -p heapscape-demo --bin heapscape-demo \
    && install -D target/release/heapscape-demo /out/heapscape-demo

FROM debian:bookworm-20250610-slim
COPY --from=build /out/heapscape-demo /usr/local/bin/heapscape-demo
USER 65534:65534
EXPOSE 8080 9000
ENTRYPOINT ["/usr/local/bin/heapscape-demo"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
