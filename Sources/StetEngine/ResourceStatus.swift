public import Foundation
public import StetCore
public import StetState

/// What `stet status` shows beside the observed world: each resource's last action, and the
/// reconcile loop's backoff and self-heal budget (`STATE/status/KIND_NAME.json`).
public struct ResourceStatus: Codable, Sendable, Equatable {
    public var resource: ResourceID
    public var lastAction: String?
    public var lastOutcome: String?
    public var lastError: String?
    public var lastAt: Date?
    /// When the loop may next correct this resource (backing off after failures).
    public var backoffUntil: Date?
    public var backoffSeconds: Double?
    /// Corrective actions in the last hour, and whether the budget stopped correction.
    public var correctionsLastHour: Int?
    public var budgetExhausted: Bool?

    public init(resource: ResourceID) { self.resource = resource }

    static func key(_ resource: ResourceID) -> String {
        "status/" + String(resource.description.map { $0.isLetter || $0.isNumber || $0 == "-" ? $0 : "_" }) + ".json"
    }

    public static func load(_ resource: ResourceID, from store: any StateStore) -> ResourceStatus {
        guard let data = try? store.read(key(resource)), let status = try? JSONCoding.decoder.decode(ResourceStatus.self, from: data)
        else { return ResourceStatus(resource: resource) }
        return status
    }

    public func save(to store: any StateStore) throws {
        try store.write(Self.key(resource), try JSONCoding.encoder.encode(self))
    }

    /// Updates the stored status of `resource` with `change`.
    public static func update(_ resource: ResourceID, in store: any StateStore, _ change: (inout ResourceStatus) -> Void) throws {
        var status = load(resource, from: store)
        change(&status)
        try status.save(to: store)
    }
}
