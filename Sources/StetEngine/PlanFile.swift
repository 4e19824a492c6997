public import Foundation
public import StetAudit
public import StetCore
public import StetCrypto

/// Saved plans (docs/architecture.md, "Plan files", a contract): a DSSE envelope of type
/// `application/vnd.stet.plan+json` signed by an operator key, whose payload is the plan JSON.
public enum PlanFile {
    public static let payloadType = "application/vnd.stet.plan+json"

    /// Plan JSON: sorted keys, so the same plan is the same bytes.
    public static func json(_ plan: Plan, pretty: Bool = false) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(plan)
    }

    public static func sign(_ plan: Plan, with key: PrivateKey) throws -> Data {
        var envelope = Envelope(payloadType: payloadType, payload: try json(plan))
        try envelope.sign(with: key)
        return envelope.json(pretty: true)
    }

    public struct Refused: Error, CustomStringConvertible, Sendable {
        public let message: String
        public var description: String { message }
    }

    /// Reads a saved plan, requiring a valid signature by one of `trust`'s operator keys and
    /// every id and name in the form the planner makes (`PlanFormError`): a signature says
    /// who wrote the plan, not that its names are safe to use as paths. Returns the plan and
    /// the signer's name.
    public static func open(_ data: Data, source: String, trust: AuditTrust) throws -> (Plan, signer: String) {
        let envelope: Envelope
        do {
            envelope = try Envelope(json: data)
        } catch {
            throw Refused(message: "\(source): not a signed plan: \(error)")
        }
        guard envelope.payloadType == payloadType else {
            throw Refused(message: "\(source): payloadType is \"\(envelope.payloadType)\", expected \"\(payloadType)\"")
        }
        let keys = trust.keys.values.map(\.publicKey)
        guard let signer = envelope.validSigners(among: keys).first else {
            throw Refused(message: "\(source): not signed by an operator key of the trust policy")
        }
        do {
            try StrictJSON.checkUniqueKeys(envelope.payload)
            // Its id and names become paths in the state directory: decoding checks their form.
            let plan = try JSONDecoder().decode(Plan.self, from: envelope.payload)
            return (plan, trust.key(id: signer.keyID)?.name ?? signer.keyID)
        } catch let problem as PlanFormError {
            throw Refused(message: "\(source): \(problem)")
        } catch {
            throw Refused(message: "\(source): the payload is not a plan: \(error)")
        }
    }
}
