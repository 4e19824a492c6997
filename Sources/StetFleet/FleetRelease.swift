public import Foundation
public import StetCore
public import StetManifest
import StetState

/// `release/current`: a signed release as `stet apply --cluster` puts it into etcd, the envelope
/// and every file it lists, in one value (etcd's request limit, 1.5 MiB, bounds the whole).
/// `version` and `digest` only say what the writer meant: every node verifies the release itself
/// (`ReleaseVerifier` under its own pinned trust) before anything of it is used.
public struct FleetRelease: Codable, Sendable, Equatable {
    public struct File: Codable, Sendable, Equatable {
        public var path: String
        public var bytes: Data
    }

    public var version: Int
    public var digest: String
    public var envelope: Data
    public var files: [File]

    public static let maximumFiles = 1000

    public init(version: Int, digest: String, envelope: Data, files: [File]) {
        self.version = version
        self.digest = digest
        self.envelope = envelope
        self.files = files
    }

    public init(_ release: VerifiedRelease) {
        self.init(
            version: release.release.version, digest: release.release.digest, envelope: release.envelope,
            files: release.files.map { File(path: $0.path, bytes: $0.bytes) })
    }

    public var reference: ReleaseRef { ReleaseRef(version: version, digest: digest) }

    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(self)
    }

    public static func decode(_ data: Data) throws(FleetError) -> FleetRelease {
        let release: FleetRelease
        do {
            release = try JSONDecoder().decode(FleetRelease.self, from: data)
        } catch {
            throw FleetError("release/current is not a release (\(error))")
        }
        guard release.files.count <= maximumFiles else {
            throw FleetError("release/current lists \(release.files.count) files, at most \(maximumFiles) are taken")
        }
        var seen: Set<String> = []
        for file in release.files {
            if let problem = pathProblem(file.path) { throw FleetError("release/current: file \"\(file.path.prefix(120))\": \(problem)") }
            guard seen.insert(file.path).inserted else { throw FleetError("release/current lists \(file.path) twice") }
        }
        return release
    }

    /// Why `path` may not be written under a release directory: only relative paths of plain
    /// names (letters, digits, `.`, `_`, `-`), never `.` or `..`, at most 16 deep and 1 KiB.
    static func pathProblem(_ path: String) -> String? {
        guard !path.isEmpty, path.utf8.count <= 1024 else { return "expected a relative path of 1 to 1024 bytes" }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 16 else { return "expected at most 16 levels" }
        for part in parts {
            guard !part.isEmpty, part != ".", part != "..", part.utf8.count <= 255,
                part.utf8.allSatisfy({ (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) || $0 == 46 || $0 == 95 || $0 == 45 })
            else { return "expected names of letters, digits, '.', '_' and '-' separated by '/', never '.' or '..'" }
        }
        guard path != ReleaseIndex.envelopeName else { return "the envelope is not a listed file" }
        return nil
    }

    /// Writes the release as a manifest directory at `directory`, replacing what was there in one
    /// step: the files go into a new hidden folder beside it (each fsynced), which then takes the
    /// old one's place (`rename`, exchanging the two when one exists), so a reader sees the old
    /// release or the new one, never a mixture.
    public func materialise(at directory: String) throws {
        let parent = (directory as NSString).deletingLastPathComponent
        let staging = (parent as NSString).appendingPathComponent(".incoming-\(UUID().uuidString)")
        try AtomicFile.makeDirectory(parent)
        try AtomicFile.makeDirectory(staging)
        do {
            try write(envelope, staging, ReleaseIndex.envelopeName)
            for file in files { try write(file.bytes, staging, file.path) }
            try AtomicFile.syncDirectory(staging)
            if FileManager.default.fileExists(atPath: directory) {
                guard Exchange.paths(staging, directory) else {
                    throw FleetError("cannot put the release in place at \(directory): \(String(cString: strerror(errno)))")
                }
                try? FileManager.default.removeItem(atPath: staging)
            } else {
                guard rename(staging, directory) == 0 else {
                    throw FleetError("cannot put the release in place at \(directory): \(String(cString: strerror(errno)))")
                }
            }
            try AtomicFile.syncDirectory(parent)
        } catch {
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        }
    }

    private func write(_ bytes: Data, _ root: String, _ relative: String) throws {
        let path = (root as NSString).appendingPathComponent(relative)
        let folder = (path as NSString).deletingLastPathComponent
        if folder != root { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]) }
        guard try AtomicFile.create(bytes, at: path, mode: 0o600) else { throw FleetError("\(relative) is written twice") }
    }
}

import CSys

enum Exchange {
    /// Swaps `a` and `b` in one step.
    static func paths(_ a: String, _ b: String) -> Bool { stet_rename_exchange(a, b) == 0 }
}
