public import Foundation
import StetCore
import StetCrypto
public import StetState

/// Reading the audit log without writing it: every entry of its whole history (the segments
/// kept after damage included), one entry, or the newest few. What `stet audit list`, `audit
/// show` and the status page read; `AuditLog` is the writer, `audit verify` the full check.
public struct AuditReader: Sendable {
    public let store: FileStateStore
    /// Nil reads without checking signatures (listing); the chain and the tree are still checked.
    public var trust: AuditTrust?

    public init(store: FileStateStore, trust: AuditTrust? = nil) {
        self.store = store
        self.trust = trust
    }

    /// Which entries a listing shows.
    public struct Filter: Sendable {
        public var kind: AuditEntry.Kind?
        public var resource: String?
        /// Entries at or after this time.
        public var since: Date?

        public init(kind: AuditEntry.Kind? = nil, resource: String? = nil, since: Date? = nil) {
            self.kind = kind
            self.resource = resource
            self.since = since
        }

        /// True when `entry` (an entry's resource, `Service/web` or `Service/web#1`) is `wanted`:
        /// the kind in any case (`service/web`), the name exactly; a wanted resource without a
        /// replica also matches its replicas.
        static func resource(_ entry: String?, matches wanted: String) -> Bool {
            guard let entry else { return false }
            func split(_ text: String) -> (kind: Substring, rest: Substring)? {
                guard let slash = text.firstIndex(of: "/") else { return nil }
                return (text[..<slash], text[text.index(after: slash)...])
            }
            guard let have = split(entry), let want = split(wanted), have.kind.lowercased() == want.kind.lowercased() else {
                return false
            }
            if have.rest == want.rest { return true }
            return !want.rest.contains("#") && have.rest.hasPrefix(want.rest + "#")
        }

        public func admits(_ entry: AuditEntry) -> Bool {
            if let kind, entry.kind != kind { return false }
            if let resource, !Self.resource(entry.resource, matches: resource) { return false }
            if let since, let time = RFC3339.parse(entry.time), time < since { return false }
            return true
        }
    }

    /// The log failed a check where the reader got to: what was read before it stands.
    public struct Damaged: Error, Sendable, CustomStringConvertible {
        public let path: String
        public let failure: AuditFailure
        public var description: String { "\(path) \(failure)" }
    }

    /// The log's path, for messages.
    public var path: String { store.root + "/" + AuditLog.logKey }

    /// Hands every line of the history, oldest first, to `visit` until it returns false. No log
    /// is an empty history. Throws `Damaged` at a line that fails a check (after the lines
    /// before it were visited), or the error of reading the state directory.
    public func scan(_ visit: (AuditScanner.Line) throws -> Bool) throws {
        guard let fd = try store.open(AuditLog.logKey, flags: O_RDONLY) else { return }
        defer { close(fd) }
        let (scan, _) = try withoutActuallyEscaping(visit) { visit in
            try AuditScanner(trust: trust).scanHistory(fd: fd, stateDirectory: store.root, visit: visit)
        }
        if let failure = scan.failure { throw Damaged(path: path, failure: failure) }
    }

    /// Hands every entry `filter` admits to `visit`, oldest first.
    public func entries(_ filter: Filter, _ visit: (AuditEntry) throws -> Void) throws {
        try scan { line in
            if filter.admits(line.entry) { try visit(line.entry) }
            return true
        }
    }

    /// The line holding entry `seq`, or nil when the log has no such entry.
    public func line(seq: Int) throws -> AuditScanner.Line? {
        var found: AuditScanner.Line?
        try scan { line in
            if line.entry.seq == seq { found = line }
            return found == nil
        }
        return found
    }

    /// The last `count` entries, read from the last 256 KiB of the log file only, unchecked: for
    /// a status page that must not cost a scan of the whole log. Lines that do not decode are
    /// left out; an unreadable log is no entries.
    public func tail(_ count: Int) -> [AuditEntry] {
        guard count > 0, let fd = try? store.open(AuditLog.logKey, flags: O_RDONLY) else { return [] }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        let size = (try? handle.seekToEnd()) ?? 0
        let start = size > Self.tailWindow ? size - Self.tailWindow : 0
        try? handle.seek(toOffset: start)
        let data = (try? handle.readToEnd()) ?? Data()
        var lines = data.split(separator: 0x0A)
        // The first line of a window that starts mid-file is a fragment.
        if start > 0, !lines.isEmpty { lines.removeFirst() }
        return lines.suffix(count).compactMap { line in
            guard let envelope = try? Envelope(json: Data(line)) else { return nil }
            return try? AuditEntry.decode(payload: envelope.payload)
        }
    }

    static let tailWindow: UInt64 = 262_144
}
