public import StetCore
import StetCrypto
import Foundation

/// What a proposal changes in the desired state, per resource and per field: the review's view
/// of a change to the manifests, beside the plan's view of what the host would do about it.
///
/// Pure data, from two decoded states (`DesiredState`): a field is named by its manifest path
/// (`spec.rpo`, `spec.run.env.LOG_LEVEL`) and shown as text, durations as Stet writes them
/// (`2h`), lists as `[a, b]`. Environment values are shown only as a digest, as plans show
/// them: a value may be a secret, and a pull request comment is read by more people than the
/// manifests. Values come from unsigned input and are cut at `maximumValueLength`; a resource
/// lists at most `maximumFields` fields and says how many more there are.
public struct DesiredDiff: Sendable, Equatable, Encodable {
    public enum Change: String, Sendable, Equatable, Encodable {
        case added, removed, changed
    }

    /// One field: `old` nil when it is new, `new` nil when it is gone.
    public struct Field: Sendable, Equatable, Encodable {
        public var path: String
        public var old: String?
        public var new: String?

        public init(path: String, old: String?, new: String?) {
            self.path = path
            self.old = old
            self.new = new
        }
    }

    public struct Resource: Sendable, Equatable, Encodable {
        public var resource: ResourceID
        public var change: Change
        public var fields: [Field]
        /// Fields changed beyond those listed.
        public var moreFields: Int
    }

    /// The longest value shown, in characters; a longer one ends in `… (N bytes)`.
    public static let maximumValueLength = 200
    /// The most fields listed per resource.
    public static let maximumFields = 100

    /// Added, removed and changed resources, in `ResourceID` order; unchanged ones are left out.
    public var resources: [Resource]

    public init(from old: DesiredState, to new: DesiredState) {
        let before = Self.fields(of: old), after = Self.fields(of: new)
        resources = Set(before.keys).union(after.keys).sorted().compactMap { id -> Resource? in
            let was = before[id], now = after[id]
            let change: Change = was == nil ? .added : now == nil ? .removed : .changed
            let paths = Set((was ?? [:]).keys).union((now ?? [:]).keys).sorted()
            let fields = paths.compactMap { path -> Field? in
                let a = was?[path], b = now?[path]
                return a == b ? nil : Field(path: path, old: a.map(Self.bounded), new: b.map(Self.bounded))
            }
            guard !fields.isEmpty || change != .changed else { return nil }
            return Resource(
                resource: id, change: change, fields: Array(fields.prefix(Self.maximumFields)),
                moreFields: max(0, fields.count - Self.maximumFields))
        }
    }

    public var isEmpty: Bool { resources.isEmpty }

    /// How many resources are added, removed and changed.
    public func count(_ change: Change) -> Int { resources.filter { $0.change == change }.count }

    /// `value` cut to `maximumValueLength` characters, saying how long it was.
    static func bounded(_ value: String) -> String {
        guard value.count > maximumValueLength else { return value }
        return String(value.prefix(maximumValueLength)) + "… (\(value.utf8.count) bytes)"
    }

    // MARK: - Fields by manifest path

    static func fields(of state: DesiredState) -> [ResourceID: [String: String]] {
        var all: [ResourceID: [String: String]] = [:]
        for (name, service) in state.services { all[ResourceID(.service, name)] = fields(of: service) }
        for (name, policy) in state.backupPolicies { all[ResourceID(.backupPolicy, name)] = fields(of: policy) }
        for (name, monitor) in state.monitors { all[ResourceID(.monitor, name)] = fields(of: monitor) }
        for (name, notifier) in state.notifiers { all[ResourceID(.notifier, name)] = fields(of: notifier) }
        return all
    }

    static func list(_ items: [String]) -> String { "[" + items.joined(separator: ", ") + "]" }

    static func labels(_ labels: [String: String], into fields: inout [String: String], at path: String) {
        for (key, value) in labels { fields["\(path).\(key)"] = value }
    }

    static func check(_ check: Check, into fields: inout [String: String], at path: String) {
        switch check {
        case .http(let url, let urlPath, let port, let expectStatus, let bodyContains):
            fields["\(path).http.url"] = url
            fields["\(path).http.path"] = urlPath
            fields["\(path).http.port"] = port.map(String.init)
            fields["\(path).http.expectStatus"] = expectStatus.map(String.init)
            fields["\(path).http.bodyContains"] = bodyContains
            if url == nil, urlPath == nil, port == nil, expectStatus == nil, bodyContains == nil { fields["\(path).http"] = "{}" }
        case .tcp(let address, let port):
            fields["\(path).tcp.address"] = address
            fields["\(path).tcp.port"] = port.map(String.init)
            if address == nil, port == nil { fields["\(path).tcp"] = "{}" }
        case .exec(let command):
            fields["\(path).exec.command"] = list(command)
        }
    }

    static func fields(of service: Service) -> [String: String] {
        var fields: [String: String] = [
            "spec.replicas": String(service.replicas),
            "spec.run.command": list(service.run.command),
            "spec.run.stopSignal": service.run.stopSignal,
            "spec.run.stopTimeout": service.run.stopTimeout.description,
            "spec.restart.backoff.initial": service.backoffInitial.description,
            "spec.restart.backoff.max": service.backoffMax.description,
            "spec.update.maxUnavailable": String(service.maxUnavailable),
            "spec.drift": service.drift.rawValue,
            "spec.protect": String(service.protect),
        ]
        labels(service.metadata.labels, into: &fields, at: "metadata.labels")
        fields["spec.run.workingDir"] = service.run.workingDir
        fields["spec.run.ports.start"] = service.run.portsStart.map(String.init)
        fields["spec.run.user"] = service.run.user
        for (key, value) in service.run.env {
            fields["spec.run.env.\(key)"] = String(Data(value.utf8).sha256Reference.prefix(19)) + "…"
        }
        if let health = service.health {
            check(health.check, into: &fields, at: "spec.health")
            fields["spec.health.interval"] = health.interval.description
            fields["spec.health.timeout"] = health.timeout.description
            fields["spec.health.failureThreshold"] = String(health.failureThreshold)
            fields["spec.health.startPeriod"] = health.startPeriod.description
        }
        return fields
    }

    static func fields(of policy: BackupPolicy) -> [String: String] {
        var fields: [String: String] = [
            "spec.paths": list(policy.paths),
            "spec.exclude": list(policy.exclude),
            "spec.repository.restic.repo": policy.resticRepository,
            "spec.repository.restic.passwordFile": policy.passwordFile,
            "spec.every": policy.every.description,
            "spec.rpo": policy.rpo.description,
            "spec.drift": policy.drift.rawValue,
            "spec.protect": String(policy.protect),
        ]
        labels(policy.metadata.labels, into: &fields, at: "metadata.labels")
        let retention = policy.retention
        for (name, count) in [("last", retention.last), ("hourly", retention.hourly), ("daily", retention.daily),
                              ("weekly", retention.weekly), ("monthly", retention.monthly)]
        {
            fields["spec.retention.\(name)"] = count.map(String.init)
        }
        fields["spec.verify.check"] = policy.checkEvery?.description
        fields["spec.verify.restoreTest"] = policy.restoreTestEvery?.description
        return fields
    }

    static func fields(of monitor: Monitor) -> [String: String] {
        var fields: [String: String] = [
            "spec.interval": monitor.interval.description,
            "spec.timeout": monitor.timeout.description,
            "spec.for": monitor.pendingFor.description,
            "spec.severity": monitor.severity.rawValue,
            "spec.notify": list(monitor.notify),
        ]
        labels(monitor.metadata.labels, into: &fields, at: "metadata.labels")
        labels(monitor.labels, into: &fields, at: "spec.labels")
        switch monitor.probe {
        case .check(let probe): check(probe, into: &fields, at: "spec.probe")
        case .service(let name): fields["spec.probe.service"] = name
        case .backup(let name): fields["spec.probe.backup"] = name
        }
        return fields
    }

    static func fields(of notifier: Notifier) -> [String: String] {
        var fields: [String: String] = [:]
        labels(notifier.metadata.labels, into: &fields, at: "metadata.labels")
        switch notifier.target {
        case .alertmanager(let url): fields["spec.alertmanager.url"] = url
        case .webhook(let url): fields["spec.webhook.url"] = url
        case .exec(let command): fields["spec.exec.command"] = list(command)
        case .log: fields["spec.log"] = "{}"
        }
        return fields
    }
}
