import Foundation

/// `stet-bench SUITE`: Stet's speed, each figure printed beside a reference measured in the
/// same run. Build with `swift run -c release stet-bench release` (or `audit`).
let suites: [String: ([String]) throws -> Void] = [
    "release": { _ in try ReleaseBenchmark.run() },
    "audit": AuditBenchmark.run,
]

let arguments = CommandLine.arguments.dropFirst()
guard let name = arguments.first, let suite = suites[name] else {
    FileHandle.standardError.write(Data("usage: stet-bench \(suites.keys.sorted().joined(separator: "|"))\n".utf8))
    exit(2)
}
do {
    try suite(Array(arguments.dropFirst()))
} catch {
    FileHandle.standardError.write(Data("stet-bench \(name): \(error)\n".utf8))
    exit(1)
}
