public import Foundation

/// A DSSE envelope (github.com/secure-systems-lab/dsse): a typed payload and the signatures over
/// its pre-authentication encoding. Stet's releases, trust rotations, plans and audit entries
/// are all DSSE envelopes.
public struct Envelope: Equatable, Sendable {
    public struct Signature: Equatable, Sendable {
        /// Hint only: hex SHA-256 of the signer's raw public key. Never trusted by itself.
        public var keyID: String
        public var signature: Data

        public init(keyID: String, signature: Data) {
            self.keyID = keyID
            self.signature = signature
        }
    }

    public var payloadType: String
    public var payload: Data
    public var signatures: [Signature]

    public init(payloadType: String, payload: Data, signatures: [Signature] = []) {
        self.payloadType = payloadType
        self.payload = payload
        self.signatures = signatures
    }

    /// `PAE(t, b) = "DSSEv1" SP len(t) SP t SP len(b) SP b`, lengths in ASCII decimal bytes.
    public static func preAuthenticationEncoding(payloadType: String, payload: Data) -> Data {
        let type = Data(payloadType.utf8)
        var out = Data("DSSEv1 \(type.count) ".utf8)
        out.append(type)
        out.append(Data(" \(payload.count) ".utf8))
        out.append(payload)
        return out
    }

    /// The bytes every signature of this envelope signs.
    public var signedBytes: Data { Self.preAuthenticationEncoding(payloadType: payloadType, payload: payload) }

    /// Adds `key`'s signature, replacing an earlier one by the same key, so signing twice is
    /// harmless.
    public mutating func sign(with key: PrivateKey) throws {
        let signature = Signature(keyID: key.publicKey.keyID, signature: try key.signature(for: signedBytes))
        signatures.removeAll { $0.keyID == signature.keyID }
        signatures.append(signature)
    }

    /// The keys among `candidates` that signed this envelope validly, each once however often it
    /// signed. A signature's key id only decides which candidate to try first.
    public func validSigners(among candidates: [PublicKey]) -> [PublicKey] {
        var found: [PublicKey] = []
        for signature in signatures {
            if let index = signer(of: signature, among: candidates), !found.contains(candidates[index]) {
                found.append(candidates[index])
            }
        }
        return found
    }

    /// The index of the candidate whose valid signature `signature` is, trying the keys that
    /// match its key id hint first; nil when none verifies it.
    public func signer(of signature: Signature, among candidates: [PublicKey]) -> Int? {
        let message = signedBytes
        let hint = signature.keyID.lowercased()
        let ordered = candidates.indices.filter { candidates[$0].keyID == hint }
            + candidates.indices.filter { candidates[$0].keyID != hint }
        return ordered.first { candidates[$0].isValidSignature(signature.signature, for: message) }
    }
}

extension Envelope {
    /// More signatures than any policy can use (a role has at most 256 keys): an envelope with
    /// more is refused before any is checked, so bogus signatures cannot buy verification time.
    public static let maximumSignatures = 256

    /// Parses envelope JSON. Base64 fields may be standard or URL-safe. Errors name the field.
    /// JSON with a key twice in one object is refused: two readers could see two envelopes.
    public init(json: Data) throws {
        // One strict scan checks the JSON and builds its value: the payload of a release is
        // megabytes of base64, and nothing else can start until it is read.
        let value: StrictJSON.Value
        do {
            value = try StrictJSON.parse(json)
        } catch {
            throw CryptoError.malformed("not JSON: \(error)")
        }
        guard case .object(let members) = value else {
            throw CryptoError.malformed("expected a JSON object with payloadType, payload and signatures")
        }
        func member(_ name: String, of members: [(key: String, value: StrictJSON.Value)]) -> StrictJSON.Value? {
            members.first { $0.key == name }?.value
        }
        guard case .string(let payloadType)? = member("payloadType", of: members) else {
            throw CryptoError.malformed("payloadType: expected a string")
        }
        guard case .string(var payloadText)? = member("payload", of: members),
            let payload = payloadText.withUTF8({ Data(lenientBase64: UnsafeRawBufferPointer($0)) })
        else {
            throw CryptoError.malformed("payload: expected base64 text")
        }
        guard case .array(let list)? = member("signatures", of: members) else {
            throw CryptoError.malformed("signatures: expected a list")
        }
        guard list.count <= Self.maximumSignatures else {
            throw CryptoError.malformed("signatures: \(list.count) signatures; at most \(Self.maximumSignatures) are accepted")
        }
        var signatures: [Signature] = []
        for (index, item) in list.enumerated() {
            guard case .object(let entry) = item else {
                throw CryptoError.malformed("signatures[\(index)]: expected an object with keyid and sig")
            }
            var keyID = ""
            switch member("keyid", of: entry) {
            case nil: break
            case .string(let text)?: keyID = text
            default: throw CryptoError.malformed("signatures[\(index)].keyid: expected a string")
            }
            guard case .string(let sigText)? = member("sig", of: entry), let sig = Data(lenientBase64: sigText) else {
                throw CryptoError.malformed("signatures[\(index)].sig: expected base64 text")
            }
            signatures.append(Signature(keyID: keyID, signature: sig))
        }
        self.init(payloadType: payloadType, payload: payload, signatures: signatures)
    }

    /// Envelope JSON with standard base64. `pretty` writes one field a line (for files people
    /// diff in review); otherwise one line (for logs).
    public func json(pretty: Bool = false) -> Data {
        func quote(_ s: String) -> String {
            let data = try! JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes])
            return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
        }
        let sigs = signatures.map { "{\"keyid\":\(quote($0.keyID)),\"sig\":\(quote($0.signature.base64EncodedString()))}" }
        let text: String
        if pretty {
            text = """
                {
                  "payloadType": \(quote(payloadType)),
                  "payload": \(quote(payload.base64EncodedString())),
                  "signatures": [\(sigs.isEmpty ? "" : "\n    " + sigs.joined(separator: ",\n    ") + "\n  ")]
                }

                """
        } else {
            text = "{\"payloadType\":\(quote(payloadType)),\"payload\":\(quote(payload.base64EncodedString())),"
                + "\"signatures\":[\(sigs.joined(separator: ","))]}"
        }
        return Data(text.utf8)
    }
}
