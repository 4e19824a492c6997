public import Foundation
public import StetCore
public import StetManifest

/// `stet apply --cluster`: puts a verified release into `release/current` with compare-and-swap,
/// refusing to go back or sideways. What is in etcd now is judged as a node would judge it: a
/// release that verifies under the same trust policy is the one in force for the fleet (never
/// replaced by an older one, or by another of the same version); anything else there is no
/// release and is replaced.
public struct FleetPublish: Sendable {
    public let client: EtcdClient
    public let keyspace: FleetKeyspace
    public let trust: TrustPolicy

    public init(client: EtcdClient, keyspace: FleetKeyspace, trust: TrustPolicy) {
        self.client = client
        self.keyspace = keyspace
        self.trust = trust
    }

    public enum Outcome: Sendable, Equatable {
        /// Written; `replaced` is the release that was in force for the fleet (nil: none, or no release).
        case published(replaced: ReleaseRef?)
        /// That very release is in etcd already.
        case current
    }

    public struct Refused: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// What `release/current` holds, judged under `trust`: the release that verifies, or why none does.
    public func inForce(scratch: String) async throws -> (kv: EtcdClient.KeyValue?, release: ReleaseRef?, problem: String?) {
        guard let kv = try await client.get(keyspace.release) else { return (nil, nil, nil) }
        do {
            let stored = try FleetRelease.decode(kv.value)
            let directory = (scratch as NSString).appendingPathComponent("current")
            try stored.materialise(at: directory)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let outcome = try ReleaseVerifier(directory: directory, trust: trust, accepted: nil, now: Date()).verify()
            switch outcome.result {
            case .success(let verified): return (kv, verified.release, nil)
            case .failure(let error): return (kv, nil, error.message)
            }
        } catch {
            return (kv, nil, "\(error)")
        }
    }

    /// Publishes `release` unless the fleet has a newer one, or another of the same version.
    public func publish(_ release: VerifiedRelease, scratch: String) async throws -> Outcome {
        let value = try FleetRelease(release).encoded()
        guard value.count <= EtcdClient.maximumValue else {
            throw Refused(description: "the release is \(value.count) bytes in etcd's form; one value holds at most \(EtcdClient.maximumValue)")
        }
        let now = try await inForce(scratch: scratch)
        if let current = now.release {
            if current.digest == release.release.digest { return .current }
            if current.version > release.release.version {
                throw Refused(description: "the fleet runs release version \(current.version); version \(release.release.version) would roll it back")
            }
            if current.version == release.release.version {
                throw Refused(description: "the fleet runs another release with version \(current.version) (\(current.digest.prefix(19))…): "
                    + "a release is never replaced by another of the same version; sign a new version")
            }
        }
        let guardCondition: EtcdClient.Compare = now.kv.map { .modRevision(keyspace.release, $0.modRevision) } ?? .absent(keyspace.release)
        let outcome = try await client.transaction([guardCondition], success: [.put(keyspace.release, value, lease: 0)])
        guard outcome.succeeded else {
            throw Refused(description: "release/current changed while this release was being published: run the apply again")
        }
        return .published(replaced: now.release)
    }
}
