import Foundation

/// `stet-bench SUITE`: Stet's speed, each figure printed beside a reference measured in the
/// same run. Build and run with `swift run -c release stet-bench SUITE`.
let suites: [String: ([String]) async throws -> Void] = [
    "release": { try ReleaseBenchmark.run($0) },
    "audit": { try AuditBenchmark.run($0) },
    "cosign": { try CosignBenchmark.run($0) },
    "plan": { try PlanBenchmark.run($0) },
    "replicas": { try await ReplicaBenchmark.run($0) },
    "backup": { try await BackupBenchmark.run($0) },
    "monitors": { try await MonitorBenchmark.run($0) },
    "fleet": { try FleetBenchmark.run($0) },
    "fleet-failover": { try await FleetFailoverBenchmark.run($0) },
    "primary-failover": { try await PrimaryFailoverBenchmark.run($0) },
]

let arguments = CommandLine.arguments.dropFirst()
guard let name = arguments.first, let suite = suites[name] else {
    FileHandle.standardError.write(Data("usage: stet-bench \(suites.keys.sorted().joined(separator: "|"))\n".utf8))
    exit(2)
}
do {
    try await suite(Array(arguments.dropFirst()))
} catch {
    FileHandle.standardError.write(Data("stet-bench \(name): \(error)\n".utf8))
    exit(1)
}
