// 中文（简体）：the same keys as en.js (html/js/i18n.js).
export default {
    // ---- every page
    'app.name': '视频问诊',
    'app.skip': '跳到正文',
    'bar.label': '显示与语言',
    'bar.other_language': 'English',
    'bar.large_text': '大字体',
    'bar.high_contrast': '高对比度',
    'common.loading': '正在加载…',
    'common.close': '关闭',
    'common.back': '返回',
    'common.next': '下一步',
    'common.yes': '是',
    'common.no': '否',
    'common.retry': '重试',
    'common.guide_link': '视频问诊使用说明',

    // ---- errors by the server's code (docs/api.md, docs/protocol.md)
    'error.unknown': '出现问题，请重试。',
    'error.network': '无法连接到医院。请检查网络连接后重试。',
    'error.unauthorized': '此链接已失效，请使用您最新收到的链接。',
    'error.forbidden': '您无权查看此内容。',
    'error.not_found': '未找到。',
    'error.slot_taken': '这个时间刚刚被别人预约了，请选择其他时间。',
    'error.slot_in_past': '这个时间已经过去，请选择其他时间。',
    'error.slot_too_far': '这一天太远，暂时不能预约。',
    'error.invalid_phone': '请输入带国家代码的手机号码，例如 +86 138 0013 8000。',
    'error.invalid_length': '内容太长或为空。',
    'error.invalid_characters': '内容中含有不能使用的字符。',
    'error.missing_field': '请填写此项。',
    'error.not_cancellable': '此预约已不能取消。',
    'error.rate_limited': '尝试次数过多，请稍后再试。',
    'error.zone_full': '医院现在非常繁忙，请几分钟后再试。',
    'error.storage_unavailable': '医院暂时无法保存，请几分钟后再试。',
    'error.bad_credentials': '医生账号或密码错误。',
    'error.too_many_attempts': '密码错误次数过多，请几分钟后再试。',
    'error.busy': '系统繁忙，请稍后再试。',
    'error.record_final': '病历已签署关闭，只能添加补充说明。',
    'error.visit_not_held': '本次问诊尚未进行。',
    'error.no_consent': '患者未同意拍照。',
    'error.already_rated': '您已经评价过本次问诊，谢谢！',
    'error.no_record': '问诊小结尚未完成。',
    'error.too_early': '候诊室尚未开放。',
    'error.visit_over': '此预约已结束。',

    // ---- booking, guide, my appointment, summary and rating (patient)
    'book.title': '预约视频问诊',

    // ---- waiting room, device check, call, snapshot consent (both)
    'wait.title': '候诊室',

    // ---- doctor's console and the visit record
    'doctor.title': '医生工作台',
};
