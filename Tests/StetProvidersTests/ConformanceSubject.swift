import Foundation
import StetCore
import Testing

/// One provider under the conformance suite (`ProviderConformance`), with the world it acts
/// on. A subject owns everything its provider makes: a folder of its own, and every process the
/// provider starts there, which `tearDown` stops.
protocol ConformanceSubject: AnyObject {
    var provider: any Provider { get }
    /// Releases to walk through in order, from nothing: together they plan every action the
    /// provider takes (start, replace, stop; register, update, unregister; …).
    var releases: [DesiredState] { get }
    /// Paths in the subject's folder that observing may write: caches of what the world holds,
    /// rebuilt from it whenever they are missing or old (never a decision).
    var caches: [String] { get }
    /// Everything the provider can change, as it is now.
    func world() -> World
    /// A release one of whose changes fails, and how.
    func failing() throws -> FailingRelease
    /// Stops every process the subject's provider started, and waits until they are gone.
    func tearDown()
}

/// A release one of whose changes fails: planned from the world as it is, then `breaking` breaks
/// the world under it (or nothing, when the release itself cannot be carried out). The error must
/// hold `cause`.
struct FailingRelease {
    var desired: DesiredState
    var cause: String
    var breaking: () throws -> Void = {}
}

/// The subjects: the in-memory provider and the host's real ones.
enum SubjectKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case memory, replicas, backups, monitors

    var testDescription: String { rawValue }

    func make() throws -> any ConformanceSubject {
        switch self {
        case .memory: MemorySubject()
        case .replicas: ReplicaSubject()
        case .backups: try BackupSubject()
        case .monitors: MonitorSubject()
        }
    }
}

/// A name no other test uses, so that processes and records of one subject are its own.
func uniqueName(_ prefix: String) -> String {
    prefix + "-" + String(format: "%08x", UInt32.random(in: 0...UInt32.max))
}
