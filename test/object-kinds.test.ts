/**
 * One Durable Object class per kind (docs/architecture.md). Stubs are typed by class from the
 * generated bindings, so a method of another class does not compile (the `@ts-expect-error` lines
 * are checked by `npm run typecheck`: if a wrong-kind call ever compiles, the unused directive fails
 * the build), and each class refuses at run time a name that is not of its kind, or no name at all.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { importObject, ledgerObject, phoneObject, statsObject, userObject } from "../src/memory/objects";
import { kindOfName, phoneObjectName } from "../src/records/object-names";
import { conversationMemory, userMemory } from "./objects";
import { uid } from "./helpers";
import type { UserMemory } from "../src/objects/user-memory/user-memory";

describe("object kinds", () => {
  it("names each kind from its object name, and nothing else", () => {
    expect(kindOfName("user:alice")).toBe("user");
    expect(kindOfName("user:+14155550123")).toBe("phone");
    expect(kindOfName("user:14155550123")).toBe("user");
    expect(kindOfName("agent:A:user:bob")).toBe("user");
    expect(kindOfName("conversation:conv_1")).toBe("conversation");
    expect(kindOfName("import:i1")).toBe("import");
    expect(kindOfName("stats:global")).toBe("stats");
    for (const name of ["something:else", "user:", "conversation:", "import:", "agent:A", "agent:A:conversation:c", "agent:A:user:+14155550123", "stats:other"]) {
      expect(kindOfName(name), name).toBeNull();
    }
  });

  it("does not compile a call of one class's method on another's stub", () => {
    const ledger = ledgerObject(env, "conv_types");
    const user = userObject(env, "user_types");
    const phone = phoneObject(env, "+14155550199");
    const stats = statsObject(env);
    const imp = importObject(env, "imp_types");
    // Typed checks only: nothing below is awaited.
    const calls = () => {
      // @ts-expect-error a ledger holds no memory
      void ledger.snapshot();
      // @ts-expect-error a ledger cannot be erased as a user
      void ledger.erase("x");
      // @ts-expect-error audio links live in ledgers only
      void user.recordAudio;
      // @ts-expect-error only a phone number's object knows who owns the number
      void user.setOwner;
      // @ts-expect-error call failures are recorded by the ledger
      void phone.recordCallFailure;
      // @ts-expect-error the hand-over of pre-Core v3 objects is not a user's method
      void user.handOverConversation;
      // @ts-expect-error the health counters have no outbox
      void stats.flush;
      // @ts-expect-error an import holds no memory
      void imp.snapshot;
      void phone.snapshot;
      void ledger.audioLink;
      void stats.readStats;
      void imp.importStatus;
    };
    expect(typeof calls).toBe("function");
    expect(() => phoneObject(env, "14155550199")).toThrow(/E\.164/);
    expect(() => phoneObjectName("alice")).toThrow(/E\.164/);
  });

  it("refuses, at run time, a method asked of the wrong kind of object", async () => {
    // Called on the instance (inside the object), so the refusal is seen as it is thrown.
    await runInDurableObject(userMemory(env, uid("user")), async (instance) => {
      const memory = instance as UserMemory;
      await expect(memory.resolveCaller()).rejects.toThrow(/resolveCaller is not a method of a user object/);
      await expect(memory.handOverConversation()).rejects.toThrow(/not a method of a user object/);
    });
    // A phone number's object is also a user's memory.
    expect((await userMemory(env, "+14155550198").snapshot()).callCount).toBe(0);
  });

  it("refuses every method of an object whose name postcall never gives out, or that has none", async () => {
    // Called on the instance (inside the object), so the refusal is seen as it is thrown.
    type Methods = Record<string, (...args: unknown[]) => Promise<unknown>>;
    const refuses = async (stub: DurableObjectStub, calls: [string, unknown[]][], message: RegExp) => {
      await runInDurableObject(stub, async (instance) => {
        const o = instance as unknown as Methods;
        for (const [method, args] of calls) await expect(o[method]!.call(o, ...args), method).rejects.toThrow(message);
      });
    };
    const everyMethod: [string, unknown[]][] = [["snapshot", []], ["flush", []], ["outboxStatus", []], ["applyRetention", []], ["erase", ["x"]]];
    await refuses(env.USER_MEMORY.get(env.USER_MEMORY.idFromName("conversation-ish:x")), everyMethod, /not a method of an object with this name/);
    await refuses(env.USER_MEMORY.get(env.USER_MEMORY.newUniqueId()), everyMethod, /not a method of an object with this name/);
    // A user's name on the ledger's binding, and a ledger's name on the memory's.
    await refuses(env.CONVERSATION_LEDGER.get(env.CONVERSATION_LEDGER.idFromName("user:alice")), [["audioLink", []], ["flush", []], ["backfillAudio", []]], /not a method of a user object/);
    await refuses(env.USER_MEMORY.get(env.USER_MEMORY.idFromName(`conversation:${uid("c")}`)), everyMethod, /not a method of a conversation object/);
    await refuses(env.HEALTH_STATS.get(env.HEALTH_STATS.idFromName("stats:other")), [["readStats", [0]]], /stats:global object only/);
    await refuses(env.HISTORY_IMPORT.get(env.HISTORY_IMPORT.idFromName("user:bob")), [["importStatus", []]], /import object only/);
    // The ledger itself serves its own name.
    expect(await conversationMemory(env, uid("c")).audioLink()).toBeNull();
  });
});
