// swift-tools-version: 6.0
// pgnode: a per-node diagnostic agent for PostgreSQL in Kubernetes containers.
//
// The targets follow the data flow: host facts → resolution → probes → checks → sinks,
// wired together by the thin `pgnode` executable.
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

let package = Package(
    name: "pgnode",
    products: [
        .executable(name: "pgnode", targets: ["pgnode"])
    ],
    dependencies: [
        // The command line (subcommands, help, usage errors).
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // Structured logging; the agent writes its own logs as JSON lines on stderr.
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
    ],
    targets: [
        // Thin C shims for system calls Swift cannot call directly (openat2, setns, statfs).
        .target(name: "CShims"),
        // The finding schema, severities, JSON values and stable ids. No I/O.
        .target(name: "PGNodeModel", swiftSettings: strict),
        // Everything read from the host: procfs, cgroupfs, mounts, kernel facts. All I/O goes
        // through a host root so tests can point it at a fixture tree.
        .target(
            name: "HostFacts",
            dependencies: ["CShims", "PGNodeModel"],
            swiftSettings: strict
        ),
        // Pure checks: facts in, findings out.
        .target(
            name: "Checks",
            dependencies: ["PGNodeModel", "HostFacts"],
            swiftSettings: strict
        ),
        // Where findings go: NDJSON, text for people.
        .target(name: "Sinks", dependencies: ["PGNodeModel"], swiftSettings: strict),
        // libcurl (HTTP client with private CAs and client certificates) and zlib (gzip bodies),
        // with typed inline wrappers for libcurl's variadic calls.
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // Delivering findings to log aggregators: payload encoders (NDJSON, Loki, Elasticsearch,
        // OTLP), the HTTP client, the on-disk spool, retries, and the delivery thread.
        .target(
            name: "Shipping",
            dependencies: [
                "PGNodeModel", "CCurl", "CZlib",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The agent runtime: the diagnosis loop, /healthz /readyz /metrics, JSON logs, signals.
        .target(
            name: "Agent",
            dependencies: [
                "PGNodeModel", "HostFacts", "Checks", "Shipping",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The command line: parses arguments and wires the parts together.
        .executableTarget(
            name: "pgnode",
            dependencies: [
                "PGNodeModel", "HostFacts", "Checks", "Sinks", "Shipping", "Agent",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Helpers shared by the test targets: CI-aware requirements, running commands.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(
            name: "PGNodeModelTests",
            dependencies: ["PGNodeModel"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "HostFactsTests",
            dependencies: ["HostFacts", "PGNodeModel", "TestSupport"],
            exclude: ["Fixtures"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ChecksTests",
            dependencies: ["Checks", "HostFacts", "PGNodeModel", "TestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SinksTests",
            dependencies: ["Sinks", "PGNodeModel"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ShippingTests",
            dependencies: [
                "Shipping", "PGNodeModel", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "AgentTests",
            dependencies: [
                "Agent", "Shipping", "PGNodeModel", "HostFacts", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "CLITests",
            dependencies: ["PGNodeModel", "TestSupport"],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
