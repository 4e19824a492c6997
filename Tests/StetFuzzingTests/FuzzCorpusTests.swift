import Foundation
import StetFuzzing
import StetTesting
import Testing

/// Every fuzz target over its seeds, every input that once crashed it (`Fuzz/regressions/`), and
/// a few thousand seeded mutations of the seeds: what `scripts/fuzz` found stays fixed, and the
/// targets themselves keep working (a target whose seeds went missing fails here).
@Suite struct FuzzCorpusTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The files under a repository path (a file or a folder), at most 256 KiB each.
    static func files(_ path: String) -> [URL] {
        let url = root.appendingPathComponent(path)
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder) else { return [] }
        guard isFolder.boolValue else { return [url] }
        let walker = FileManager.default.enumerator(at: url, includingPropertiesForKeys: [.isRegularFileKey, .fileSizeKey])
        return (walker?.compactMap { $0 as? URL } ?? []).filter {
            let values = try? $0.resourceValues(forKeys: [.isRegularFileKey, .fileSizeKey])
            return values?.isRegularFile == true && (values?.fileSize ?? 0) <= 256 << 10
        }.sorted { $0.path < $1.path }
    }

    static var names: [String] { FuzzTargets.all.map(\.name) }

    @Test(arguments: names) func seedsAndRegressions(_ name: String) throws {
        let target = try #require(FuzzTargets.named(name))
        let seeds = target.seeds.flatMap(Self.files)
        #expect(!seeds.isEmpty, "\(name): none of \(target.seeds) holds a seed")
        for file in seeds + Self.files("Fuzz/regressions/\(name)") {
            target.run(try Data(contentsOf: file))
        }
    }

    /// Byte flips, cuts, repeats and splices of each seed, the same every run.
    @Test(arguments: names) func mutatedSeeds(_ name: String) throws {
        let target = try #require(FuzzTargets.named(name))
        let seeds = try target.seeds.flatMap(Self.files).prefix(8).map { try [UInt8](Data(contentsOf: $0)) }
        var random = SplitMix(seed: UInt64(name.utf8.reduce(0) { $0 &* 31 &+ Int($1) }.magnitude))
        for round in 0..<400 {
            guard var bytes = seeds.isEmpty ? nil : seeds[round % seeds.count] else { break }
            for _ in 0...Int.random(in: 0...3, using: &random) {
                guard !bytes.isEmpty else { break }
                let at = Int.random(in: 0..<bytes.count, using: &random)
                switch Int.random(in: 0..<5, using: &random) {
                case 0: bytes[at] ^= UInt8(1 << Int.random(in: 0..<8, using: &random))
                case 1: bytes.removeSubrange(at...)
                case 2: bytes.insert(contentsOf: bytes[at..<min(bytes.count, at + 16)], at: at)
                case 3: bytes[at] = [0x00, 0x22, 0x5C, 0x7B, 0x7D, 0x0A, 0x2D, 0xFF, 0x39][Int.random(in: 0..<9, using: &random)]
                default: bytes.remove(at: at)
                }
            }
            target.run(Data(bytes))
        }
    }
}
