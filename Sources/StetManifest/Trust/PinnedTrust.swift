public import Foundation
import StetCrypto
public import StetState

/// The trust policy in force on this host, kept in the state directory (`trust/policy.json`)
/// with the key material itself, so that editing `keys/` in a repository changes nothing until
/// a rotation signed by the pinned root keys says so.
public enum PinnedTrust {
    public static let key = "trust/policy.json"

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

    public static func load(from store: any StateStore) throws -> TrustPolicy? {
        guard let data = try store.read(key) else { return nil }
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
