/**
 * The three kinds of UserMemory object (src/memory/roles.ts) are distinct in types, and the class
 * refuses at run time a method asked of the wrong kind. The `@ts-expect-error` lines are checked by
 * `npm run typecheck`: if a wrong-kind call ever compiles, the unused directive fails the build.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { conversationObject, kindOfName, phoneObject, userObject } from "../src/memory/objects";
import { conversationMemory, userMemory } from "./objects";
import { uid } from "./helpers";
import type { UserMemory } from "../src/objects/user-memory/user-memory";

describe("object kinds", () => {
  it("names each kind from its object name", () => {
    expect(kindOfName("user:alice")).toBe("user");
    expect(kindOfName("user:+14155550123")).toBe("phone");
    expect(kindOfName("user:14155550123")).toBe("user");
    expect(kindOfName("conversation:conv_1")).toBe("conversation");
    expect(kindOfName("something:else")).toBeNull();
  });

  it("does not compile a user-only call on a conversation's object, or the reverse", () => {
    const conversation = conversationObject(env, "conv_types");
    const user = userObject(env, "user_types");
    const phone = phoneObject(env, "+14155550199");
    // Typed checks only: nothing below is awaited.
    const calls = () => {
      // @ts-expect-error a conversation's object holds no memory
      void conversation.snapshot();
      // @ts-expect-error a conversation's object cannot be erased as a user
      void conversation.erase("x");
      // @ts-expect-error audio links live in conversation objects only
      void user.recordAudio;
      // @ts-expect-error only a phone number's object knows who owns the number
      void user.setOwner;
      // @ts-expect-error call failures are recorded by the conversation's object
      void phone.recordCallFailure;
      void phone.snapshot;
      void conversation.audioLink;
    };
    expect(typeof calls).toBe("function");
    expect(() => phoneObject(env, "14155550199")).toThrow(/E\.164/);
  });

  it("refuses, at run time, a method asked of the wrong kind of object", async () => {
    // Called on the instance (inside the object), so the refusal is seen as it is thrown.
    await runInDurableObject(conversationMemory(env, uid("conv")), async (instance) => {
      const memory = instance as unknown as UserMemory;
      await expect(memory.snapshot()).rejects.toThrow(/snapshot is not a method of a conversation object/);
      await expect(memory.erase("someone")).rejects.toThrow(/not a method of a conversation object/);
    });
    await runInDurableObject(userMemory(env, uid("user")), async (instance) => {
      const memory = instance as unknown as UserMemory;
      await expect(memory.resolveCaller()).rejects.toThrow(/resolveCaller is not a method of a user object/);
      await expect(memory.audioLink("c")).rejects.toThrow(/not a method of a user object/);
    });
    // A phone number's object is also a user's memory.
    expect((await userMemory(env, "+14155550198").snapshot()).callCount).toBe(0);
  });
});
