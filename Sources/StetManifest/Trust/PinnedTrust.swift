public import Foundation
import StetCrypto
public import StetState

/// The trust policy in force on this host, kept in the state directory (`trust/policy.json`)
/// with the key material itself, so that editing `keys/` in a repository changes nothing until
/// a rotation signed by the pinned root keys says so.
public enum PinnedTrust {
    public static let key = StateKey.pinnedTrust

    private struct Stored: Codable {
        struct StoredKey: Codable {
            var keyid: String
            var publicKey: String
            var example: Bool
        }
        var version: Int
        var digest: String
        var pinnedAt: Date
        var keys: [String: StoredKey]
        var roles: [String: TrustPolicy.Threshold]
    }

    /// Where earlier pinned policies are kept (`trust/history/v<N>.json`): audit entries their
    /// operator keys signed stay verifiable after a rotation.
    public static let historyFolder = "trust/history"

    public static func load(from store: any StateStore) throws -> TrustPolicy? {
        guard let data = try store.read(key) else { return nil }
        return try decode(data, key: key)
    }

    /// The pinned policy first, then the ones it replaced, newest first.
    public static func loadWithHistory(from store: any StateStore) throws -> [TrustPolicy] {
        guard let current = try load(from: store) else { return [] }
        var earlier: [TrustPolicy] = []
        for name in try store.list(historyFolder) where name.hasSuffix(".json") {
            let entry = historyFolder + "/" + name
            if let data = try store.read(entry) { earlier.append(try decode(data, key: entry)) }
        }
        return [current] + earlier.sorted { $0.version > $1.version }
    }

    private static func decode(_ data: Data, key: String) throws -> TrustPolicy {
        do {
            let stored = try JSONCoding.decoder.decode(Stored.self, from: data)
            var keys: [String: TrustPolicy.Key] = [:]
            for (name, entry) in stored.keys {
                keys[name] = TrustPolicy.Key(
                    name: name, publicKey: try PublicKey(pem: Data(entry.publicKey.utf8), source: "\(key) (\(name))"),
                    example: entry.example)
            }
            var roles: [TrustPolicy.Role: TrustPolicy.Threshold] = [:]
            for (name, threshold) in stored.roles {
                guard let role = TrustPolicy.Role(rawValue: name) else { throw StateError.corrupt(key, "unknown role \(name)") }
                roles[role] = threshold
            }
            return TrustPolicy(version: stored.version, keys: keys, roles: roles, digest: stored.digest)
        } catch let error as StateError {
            throw error
        } catch {
            throw StateError.corrupt(key, "\(error)")
        }
    }

    public static func save(_ policy: TrustPolicy, to store: any StateStore, now: Date) throws {
        if let previous = try store.read(key), let old = try? decode(previous, key: key), old.digest != policy.digest {
            try store.write("\(historyFolder)/v\(old.version)-\(old.digest.suffix(12)).json", previous)
        }
        var keys: [String: Stored.StoredKey] = [:]
        for (name, entry) in policy.keys {
            keys[name] = Stored.StoredKey(
                keyid: entry.publicKey.keyID, publicKey: String(decoding: try entry.publicKey.pem(), as: UTF8.self),
                example: entry.example)
        }
        let stored = Stored(
            version: policy.version, digest: policy.digest, pinnedAt: now, keys: keys,
            roles: Dictionary(uniqueKeysWithValues: policy.roles.map { ($0.key.rawValue, $0.value) }))
        try store.write(key, try JSONCoding.encoder.encode(stored))
    }
}
