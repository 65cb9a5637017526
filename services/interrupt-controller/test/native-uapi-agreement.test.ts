// The model's copy of the KVM XIVE uapi (libs/xive, which imports no kernel library) equals
// libs/host-kernel's, which its tests check against the ppc64le headers.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { KVM_REG_PPC_VP_STATE, KvmCap, KvmDeviceType, KvmXive, KvmXiveEqLayout } from "@vplane/host-kernel";
import * as model from "@vplane/xive";

describe("libs/xive's KVM XIVE constants are the uapi headers'", () => {
  it("capability 169 (not 168), device type 9, groups, CTRL attributes, value bits, mmap offsets, VP_STATE, eq size", () => {
    assert.equal(model.KVM_CAP_PPC_IRQ_XIVE, KvmCap.KVM_CAP_PPC_IRQ_XIVE);
    assert.equal(model.KVM_DEV_TYPE_XIVE, KvmDeviceType.KVM_DEV_TYPE_XIVE);
    assert.deepEqual(model.KvmXiveGroup, {
      CTRL: KvmXive.KVM_DEV_XIVE_GRP_CTRL,
      SOURCE: KvmXive.KVM_DEV_XIVE_GRP_SOURCE,
      SOURCE_CONFIG: KvmXive.KVM_DEV_XIVE_GRP_SOURCE_CONFIG,
      EQ_CONFIG: KvmXive.KVM_DEV_XIVE_GRP_EQ_CONFIG,
      SOURCE_SYNC: KvmXive.KVM_DEV_XIVE_GRP_SOURCE_SYNC,
    });
    assert.deepEqual(model.KvmXiveCtrl, {
      RESET: KvmXive.KVM_DEV_XIVE_RESET,
      EQ_SYNC: KvmXive.KVM_DEV_XIVE_EQ_SYNC,
      NR_SERVERS: KvmXive.KVM_DEV_XIVE_NR_SERVERS,
    });
    assert.equal(model.KVM_XIVE_LEVEL_SENSITIVE, KvmXive.KVM_XIVE_LEVEL_SENSITIVE);
    assert.equal(model.KVM_XIVE_LEVEL_ASSERTED, KvmXive.KVM_XIVE_LEVEL_ASSERTED);
    assert.equal(model.KVM_XIVE_EQ_ALWAYS_NOTIFY, KvmXive.KVM_XIVE_EQ_ALWAYS_NOTIFY);
    assert.equal(model.KVM_XIVE_ESB_PAGE_OFFSET, KvmXive.KVM_XIVE_ESB_PAGE_OFFSET);
    assert.equal(model.KVM_XIVE_TIMA_PAGE_OFFSET, KvmXive.KVM_XIVE_TIMA_PAGE_OFFSET);
    assert.equal(BigInt(model.KVM_REG_PPC_VP_STATE), KVM_REG_PPC_VP_STATE & 0xffffn);
    assert.equal(model.KVM_XIVE_EQ_SIZE, KvmXiveEqLayout.size);
  });
});
