// swift-tools-version: 6.0
import PackageDescription

/// Every Stet target is compiled with the same strictness: explicit `any` for existentials and
/// imports that are internal unless written `public import`.
let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

/// The commit and date a packaged build was made from (`scripts/package` sets `STET_BUILD_COMMIT`
/// and `STET_BUILD_DATE`); without them `stet version` says "unknown". Each value becomes a C string
/// literal, so only its expected characters pass: a hex commit (with `-dirty` when the tree had
/// changes) and an RFC 3339 UTC time.
func buildDefine(_ name: String, expected: String, length: ClosedRange<Int>, allowed: String) -> [CSetting] {
    guard let value = Context.environment[name], !value.isEmpty else { return [] }
    guard length.contains(value.count), value.allSatisfy({ allowed.contains($0) }) else {
        fatalError("\(name)=\(value): expected \(expected)")
    }
    return [.define(name, to: "\"\(value)\"")]
}

let buildInfo =
    buildDefine("STET_BUILD_COMMIT", expected: "a git commit in hex, e.g. 677d2de or 677d2de-dirty", length: 7...46,
                allowed: "0123456789abcdef-dirty")
    + buildDefine("STET_BUILD_DATE", expected: "a UTC time such as 2026-11-30T12:00:00Z", length: 20...20, allowed: "0123456789-:TZ")

let package = Package(
    name: "stet",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "stet", targets: ["stet"]),
        .executable(name: "stet-bench", targets: ["stet-bench"]),
        .executable(name: "stet-bench-replica", targets: ["stet-bench-replica"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // Hummingbird's own; named for the status server's connection handler.
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.0"),
        // The fleet's etcd client: HTTP/1.1 with TLS and client certificates.
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.30.0"),
    ],
    targets: [
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(name: "CSys"),
        .target(name: "CStetBuild", cSettings: buildInfo),
        .target(name: "StetCrypto", dependencies: ["COpenSSL"], swiftSettings: strict),
        .target(name: "StetCore", swiftSettings: strict),
        .target(name: "StetState", dependencies: ["CSys", "StetCore"], swiftSettings: strict),
        .target(
            name: "StetManifest",
            dependencies: ["StetCore", "StetCrypto", "StetState", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict
        ),
        .target(name: "StetAudit", dependencies: ["StetCore", "StetCrypto", "StetState"], swiftSettings: strict),
        .target(name: "StetPlanner", dependencies: ["StetCore", "StetCrypto"], swiftSettings: strict),
        .target(
            name: "StetProviders", dependencies: ["CSys", "StetCore", "StetCrypto", "StetState"], swiftSettings: strict
        ),
        .target(
            name: "StetServer",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "StetFleet",
            dependencies: [
                "CSys", "StetAudit", "StetCore", "StetCrypto", "StetState", "StetManifest", "StetEngine", "StetProviders",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "StetEngine",
            dependencies: ["StetCore", "StetCrypto", "StetState", "StetAudit", "StetPlanner", "StetProviders", "StetManifest"],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "stet",
            dependencies: [
                "StetCore", "StetCrypto", "StetState", "StetManifest", "StetAudit", "StetPlanner", "StetProviders", "StetEngine",
                "StetServer", "StetFleet", "CStetBuild",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "stet-bench",
            dependencies: [
                "StetCore", "StetCrypto", "StetState", "StetManifest", "StetAudit", "StetPlanner", "StetProviders", "StetEngine",
                "StetServer", "StetTesting", "StetFleet", "CSys", "stet-bench-replica",
            ],
            swiftSettings: strict
        ),
        // The benchmarks' replica, in C (its main.c says why).
        .executableTarget(name: "stet-bench-replica"),
        .target(
            name: "StetFuzzing",
            dependencies: ["StetAudit", "StetCore", "StetCrypto", "StetEngine", "StetFleet", "StetManifest", "StetProviders"],
            swiftSettings: strict
        ),
        .target(
            name: "StetTesting",
            dependencies: ["CSys", "StetCore", "StetCrypto", "StetState", "StetManifest"],
            swiftSettings: strict
        ),
        .testTarget(name: "StetFuzzingTests", dependencies: ["StetFuzzing", "StetTesting"], swiftSettings: strict),
        .testTarget(name: "StetCryptoTests", dependencies: ["StetCrypto", "StetTesting"], swiftSettings: strict),
        .testTarget(name: "StetFleetTests", dependencies: ["StetFleet", "StetTesting", "StetCore", "StetCrypto", "StetManifest"], swiftSettings: strict),
        .testTarget(name: "StetStateTests", dependencies: ["StetState", "StetTesting"], swiftSettings: strict),
        .testTarget(
            name: "StetManifestTests",
            dependencies: ["StetManifest", "StetState", "StetTesting"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "StetAuditTests",
            dependencies: ["StetAudit", "StetCrypto", "StetState", "StetTesting"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "StetPlannerTests", dependencies: ["StetPlanner", "StetCore", "StetCrypto"], swiftSettings: strict
        ),
        .testTarget(
            name: "StetProvidersTests",
            dependencies: ["StetProviders", "StetPlanner", "StetCore", "StetCrypto", "StetState", "StetTesting"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "StetEngineTests",
            dependencies: [
                "StetEngine", "StetProviders", "StetPlanner", "StetAudit", "StetCore", "StetCrypto", "StetState", "StetManifest",
                "StetServer", "StetTesting",
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "StetCLITests",
            dependencies: ["stet", "StetTesting", "StetCrypto", "StetManifest", "StetAudit", "StetCore", "StetEngine", "StetProviders", "StetFleet"],
            swiftSettings: strict
        ),
    ]
)

/// `STET_FUZZ=1` adds `stet-fuzz`, the libFuzzer executable over `StetFuzzing`'s targets
/// (`scripts/fuzz` builds it with `-sanitize=fuzzer,address`). The normal build leaves it out:
/// its `main` is libFuzzer's.
if Context.environment["STET_FUZZ"] == "1" {
    package.products.append(.executable(name: "stet-fuzz", targets: ["stet-fuzz"]))
    package.targets.append(.executableTarget(name: "stet-fuzz", dependencies: ["StetFuzzing"], path: "Fuzz/Driver", swiftSettings: strict))
}
