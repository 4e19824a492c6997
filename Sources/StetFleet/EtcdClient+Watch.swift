public import Foundation
import AsyncHTTPClient
import NIOCore

extension EtcdClient {
    public struct WatchEvent: Sendable, Equatable {
        public enum Kind: Sendable { case put, delete }
        public let kind: Kind
        /// For a delete, the key and the revision of the deletion only.
        public let kv: KeyValue
    }

    /// The largest single message of a watch stream, in bytes (etcd sends one per revision
    /// batch; a larger one ends the watch).
    public static let maximumWatchMessage = 8 << 20

    /// Every change of a key under `prefix` from `revision` on, in batches as etcd sends them.
    /// The stream ends with an error when the connection goes or etcd cancels the watch (a
    /// compacted revision): watch again from the revision after the last one seen.
    public func watch(prefix: String, fromRevision revision: Int64) -> AsyncThrowingStream<[WatchEvent], any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    try await self.streamWatch(prefix: prefix, revision: revision) { continuation.yield($0) }
                    continuation.finish(throwing: Failure(kind: .unreachable, description: "etcd ended the watch of \(prefix)"))
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    private func streamWatch(prefix: String, revision: Int64, yield: ([WatchEvent]) -> Void) async throws {
        try Self.checkKey(prefix)
        let create: [String: Any] = [
            "create_request": [
                "key": Wire.b64(prefix), "range_end": Wire.b64(Self.prefixEnd(prefix)), "start_revision": String(max(revision, 0)),
            ] as [String: Any],
        ]
        let data = try JSONSerialization.data(withJSONObject: create)
        counts.add("/v3/watch")
        var reasons: [String] = []
        for endpoint in endpoints {
            var request = HTTPClientRequest(url: endpoint.absoluteString.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + "/v3/watch")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: data))
            let response: HTTPClientResponse
            do {
                response = try await http.execute(request, deadline: .distantFuture)
            } catch {
                reasons.append("\(endpoint.absoluteString): \(error)")
                continue
            }
            guard response.status == .ok else {
                throw Failure(kind: .rejected, description: "etcd \(endpoint.absoluteString): watch answered HTTP \(response.status.code)")
            }
            var splitter = JSONObjectSplitter(limit: Self.maximumWatchMessage)
            for try await chunk in response.body {
                for message in try splitter.feed(Array(buffer: chunk)) {
                    let events = try Self.watchEvents(message)
                    if !events.isEmpty { yield(events) }
                }
            }
            return
        }
        throw Failure(kind: .unreachable, description: "etcd unreachable for a watch: " + reasons.joined(separator: "; ").prefix(600))
    }
}

extension EtcdClient {
    /// The events of one watch message (a JSON object of the gateway), none for a message that
    /// carries none (the watch's creation, progress); an error, a cancelled watch or an event
    /// out of form is an error.
    package static func watchEvents(_ message: [UInt8]) throws -> [WatchEvent] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(message)) as? [String: Any] else {
            throw Failure(kind: .malformed, description: "etcd: a watch message that is not a JSON object")
        }
        if let error = object["error"] as? [String: Any] {
            throw Failure(kind: .rejected, description: "etcd watch: \(String(describing: error["message"] ?? "error").prefix(300))")
        }
        guard let result = object["result"] as? [String: Any] else { return [] }
        if result["canceled"] as? Bool == true {
            throw Failure(
                kind: .rejected,
                description: "etcd canceled the watch: \(String(describing: result["cancel_reason"] ?? "no reason").prefix(300))")
        }
        var events: [WatchEvent] = []
        for event in result["events"] as? [[String: Any]] ?? [] {
            guard let kv = event["kv"] as? [String: Any] else {
                throw Failure(kind: .malformed, description: "etcd: a watch event without its key")
            }
            let kind: WatchEvent.Kind = (event["type"] as? String) == "DELETE" ? .delete : .put
            events.append(WatchEvent(kind: kind, kv: try Wire.keyValue(kv)))
        }
        return events
    }
}

/// Cuts a stream of concatenated JSON objects (etcd's watch answers) into whole objects, each at
/// most `limit` bytes; text between objects (newlines) is skipped.
package struct JSONObjectSplitter {
    let limit: Int
    private var current: [UInt8] = []
    private var depth = 0
    private var inString = false
    private var escaped = false

    package init(limit: Int) { self.limit = limit }

    package mutating func feed(_ bytes: [UInt8]) throws(EtcdClient.Failure) -> [[UInt8]] {
        var complete: [[UInt8]] = []
        for byte in bytes {
            if depth == 0 {
                guard byte == UInt8(ascii: "{") else { continue }
            }
            current.append(byte)
            guard current.count <= limit else {
                throw EtcdClient.Failure(kind: .malformed, description: "etcd: a watch message over \(limit) bytes")
            }
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"): depth += 1
            case UInt8(ascii: "}"):
                depth -= 1
                if depth == 0 {
                    complete.append(current)
                    current = []
                }
            default: break
            }
        }
        return complete
    }
}
