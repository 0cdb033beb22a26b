/** Tests post as member devices do: through the device helpers of gateways/devices. */
export {
  newChat,
  createdDraft,
  messageDraft,
  membersAddedDraft,
  membersRemovedDraft,
  readMessage,
  type DeviceChat as TestChat,
} from '../../gateways/devices/index.js';
