import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EventClass, EventId, decodeEventRecord, encodeEventRecord, type SmmuEvent } from "../src/index.js";

describe("event records: decodeEventRecord reads back what encodeEventRecord writes (digest §3.4)", () => {
  const cases: [string, SmmuEvent][] = [
    [
      "a configuration error carries only StreamID and SSID",
      { id: EventId.C_BAD_STE, streamId: 0x42, substreamId: 3 },
    ],
    ["C_BAD_CD without a SubstreamID", { id: EventId.C_BAD_CD, streamId: 7 }],
    ["F_CD_FETCH adds the fetch address", { id: EventId.F_CD_FETCH, streamId: 1, fetchAddress: 0x4000_1238 }],
    [
      "a stage-2 translation fault carries the IPA, page aligned",
      {
        id: EventId.F_TRANSLATION,
        streamId: 0x42,
        read: false,
        stage2: true,
        eventClass: EventClass.IN,
        ttRead: false,
        inputAddress: 0x1234_5678n,
        ipa: 0x8765_4000,
      },
    ],
    [
      "a stage-1 permission fault of a read",
      {
        id: EventId.F_PERMISSION,
        streamId: 9,
        substreamId: 1,
        read: true,
        stage2: false,
        eventClass: EventClass.TT,
        ttRead: true,
        inputAddress: 0xffff_0000_0000_1000n,
      },
    ],
    [
      "F_WALK_EABT carries the fetch address in dw3",
      {
        id: EventId.F_WALK_EABT,
        streamId: 2,
        read: true,
        stage2: false,
        eventClass: EventClass.TT,
        ttRead: true,
        inputAddress: 0x1000n,
        fetchAddress: 0x9000_0008,
      },
    ],
  ];
  for (const [rule, event] of cases) {
    it(rule, () => assert.deepEqual(decodeEventRecord(encodeEventRecord(event)), event));
  }

  it("a stalled fault's STAG and the PnU/InD bits are read back", () => {
    const event: SmmuEvent = {
      id: EventId.F_TRANSLATION,
      streamId: 5,
      stall: true,
      stag: 0x1234,
      privileged: true,
      instruction: true,
      read: true,
      stage2: false,
      eventClass: EventClass.IN,
      ttRead: false,
      inputAddress: 0x2000n,
    };
    assert.deepEqual(decodeEventRecord(encodeEventRecord(event)), event);
  });
});
