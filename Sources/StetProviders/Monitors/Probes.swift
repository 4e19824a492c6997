public import Foundation
public import StetCore

/// Runs a monitor's probe once, bounded by its timeout.
public struct ProbeRunner: Sendable {
    public let replicas: ReplicaProvider
    public let backups: BackupProvider
    let checks = CheckRunner()

    public init(replicas: ReplicaProvider, backups: BackupProvider) {
        self.replicas = replicas
        self.backups = backups
    }

    public struct Result: Sendable {
        public let ok: Bool
        public let detail: String
        public let durationMs: Int
    }

    public func probe(_ monitor: Monitor, desired: DesiredState, now: Date = Date()) async -> Result {
        let started = DispatchTime.now().uptimeNanoseconds
        let (ok, detail): (Bool, String)
        switch monitor.probe {
        case .check(let check):
            let result = checks.run(check, port: nil, timeout: monitor.timeout.seconds)
            (ok, detail) = (result.ok, String(result.detail.prefix(500)))
        case .service(let name):
            guard let service = desired.services[name] else {
                (ok, detail) = (false, "service \(name) is not in the release")
                break
            }
            // Health as the reconcile loop recorded it: a probe does not run the replicas' checks.
            var recorded = replicas
            recorded.checkHealth = false
            var scoped = DesiredState()
            scoped.services[name] = service
            let observed = try? await recorded.observe(scoped, now: now).services[name]
            let ready = observed?.ready(promised: service.replicas) ?? 0
            (ok, detail) = (ready >= service.replicas, "\(ready) of \(service.replicas) replicas ready")
        case .backup(let name):
            guard let policy = desired.backupPolicies[name] else {
                (ok, detail) = (false, "backup policy \(name) is not in the release")
                break
            }
            var scoped = DesiredState()
            scoped.backupPolicies[name] = policy
            let observed = try? await backups.observe(scoped, now: now).backups[name]
            let health = BackupHealth.evaluate(policy, observed, now: now)
            (ok, detail) = (health.healthy, health.findings.joined(separator: "; "))
        }
        return Result(ok: ok, detail: detail, durationMs: Int((DispatchTime.now().uptimeNanoseconds - started) / 1_000_000))
    }
}

/// Sends alerts to one notifier. Alertmanager gets its API v2 array; a webhook a JSON object
/// `{status, alerts}`; a command the same object on standard input; the log a line.
public struct NotifierSender: Sendable {
    public let log: @Sendable (String) -> Void

    public init(log: @escaping @Sendable (String) -> Void) { self.log = log }

    public func send(_ alerts: [AlertMessage], to notifier: Notifier, timeout: Double = 3) -> String? {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        struct Envelope: Encodable {
            let status: String
            let alerts: [AlertMessage]
        }
        let status = alerts.allSatisfy { $0.endsAt != nil } ? "resolved" : "firing"
        switch notifier.target {
        case .alertmanager(let url):
            guard let body = try? encoder.encode(alerts) else { return "cannot encode the alerts" }
            let base = url.hasSuffix("/") ? String(url.dropLast()) : url
            switch PlainHTTP.request("POST", base + "/api/v2/alerts", body: body, timeout: timeout) {
            case .success(let response) where (200..<300).contains(response.status): return nil
            case .success(let response): return "Alertmanager answered \(response.status): \(String(decoding: response.body.prefix(200), as: UTF8.self))"
            case .failure(let failure): return failure.description
            }
        case .webhook(let url):
            guard let body = try? encoder.encode(Envelope(status: status, alerts: alerts)) else { return "cannot encode the alerts" }
            switch PlainHTTP.request("POST", url, body: body, timeout: timeout) {
            case .success(let response) where (200..<300).contains(response.status): return nil
            case .success(let response): return "the webhook answered \(response.status)"
            case .failure(let failure): return failure.description
            }
        case .exec(let command):
            guard let body = try? encoder.encode(Envelope(status: status, alerts: alerts)) else { return "cannot encode the alerts" }
            return Self.run(command, input: body, timeout: timeout)
        case .log:
            for alert in alerts {
                log("alert \(alert.endsAt == nil ? "firing" : "resolved"): \(alert.labels["alertname"] ?? "") "
                    + "\(alert.labels["monitor"].map { "monitor=\($0) " } ?? "")\(alert.annotations["summary"] ?? "")")
            }
            return nil
        }
    }

    /// Runs an exec notifier with the alert on standard input, through the one subprocess
    /// runner: a plain environment (never Stet's key or state directory), the alert written
    /// within the deadline, the command and everything it started killed at the deadline. It
    /// took the alert when it read all of it and exited 0; a command that ends without reading
    /// it (`true`), or stops reading, failed.
    static func run(_ command: [String], input: Data, timeout: Double) -> String? {
        guard let program = command.first else { return "empty command" }
        var said = KeptText(limit: 100)
        let job = Subprocess.Command(
            program, Array(command.dropFirst()), environment: Subprocess.plainEnvironment(), input: .bytes(input), timeout: timeout,
            mergeStandardError: true)
        let ending: Subprocess.Ending
        do {
            ending = try Subprocess.execute(job, standardOutput: { said.append($0) }, standardError: { _ in })
        } catch let stopped as Subprocess.Stopped {
            return "\(program) \(stopped.description)"
        } catch {
            return "\(error)"
        }
        let output = said.text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard ending.status == 0 else { return "\(program) exited \(ending.status)" + (output.isEmpty ? "" : ": \(output)") }
        guard ending.unreadInput == 0 else {
            return "\(program) exited without reading the alert (\(ending.unreadInput) of \(input.count) bytes unread)"
        }
        return nil
    }
}
