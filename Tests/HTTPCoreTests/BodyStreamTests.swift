import Testing

@testable import HTTPCore

/// The body hand-over without sockets: the loop side and the handler side of one `BodyStream`.
@Suite("Request body backpressure")
struct BodyStreamTests {
    @Test func pausesAboveHighWaterAndResumesBelowLowWater() async throws {
        let mailbox = try LoopMailbox()
        let stream = BodyStream(
            connection: ConnectionHandle(id: 42, mailbox: mailbox), needsContinue: false, highWater: 1000)
        #expect(stream.push([UInt8](repeating: 1, count: 600)) == false)
        #expect(stream.push([UInt8](repeating: 2, count: 600)) == true, "1200 buffered bytes pause reading")
        #expect(mailbox.takeAll().isEmpty)

        #expect(try await stream.next()?.count == 600)
        #expect(mailbox.takeAll().isEmpty, "600 bytes left is above the low-water mark")
        #expect(try await stream.next()?.count == 600)
        let messages = mailbox.takeAll()
        #expect(messages.count == 1)
        if case .resumeReading(let id)? = messages.first { #expect(id == 42) } else { Issue.record("\(messages)") }

        stream.finish()
        #expect(try await stream.next() == nil)
    }

    @Test func firstReadAsksForContinueOnce() async throws {
        let mailbox = try LoopMailbox()
        let stream = BodyStream(connection: ConnectionHandle(id: 7, mailbox: mailbox), needsContinue: true)
        #expect(stream.isContinuePending)
        let reader = Task { try await HTTPRequestBody(stream: stream).collect(upTo: 100) }
        // The reader suspends only after posting sendContinue; wait for that message.
        var messages: [LoopMessage] = []
        let deadline = ContinuousClock.now + .seconds(5)
        while messages.isEmpty && ContinuousClock.now < deadline {
            await Task.yield()
            messages = mailbox.takeAll()
        }
        guard case .sendContinue(7)? = messages.first else {
            Issue.record("expected sendContinue, got \(messages)")
            return
        }
        #expect(stream.push(Array("abc".utf8)) == false)
        stream.finish()
        #expect(try await reader.value == Array("abc".utf8))
        #expect(mailbox.takeAll().isEmpty)
    }

    @Test func failureReachesTheReader() async throws {
        let mailbox = try LoopMailbox()
        let stream = BodyStream(connection: ConnectionHandle(id: 1, mailbox: mailbox), needsContinue: false)
        _ = stream.push([1, 2, 3])
        stream.fail(.timeout("slow"))
        let body = HTTPRequestBody(stream: stream)
        await #expect(throws: HTTPError.requestTimeout) { try await body.collect(upTo: 100) }
    }

    @Test func collectEnforcesItsLimit() async throws {
        let body = HTTPRequestBody(bytes: [UInt8](repeating: 0, count: 11))
        await #expect(throws: HTTPError.bodyTooLarge) { try await body.collect(upTo: 10) }
        #expect(try await body.collect(upTo: 11).count == 11)
    }
}
